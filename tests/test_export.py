"""scripts/export.py end to end: each export loaded back gives the checkpoint's outputs."""

from pathlib import Path

import pytest
import torch

from cli.commands.export import export_state_dict
from models import CNN, MLP, Airbench94, ResNet9
from tests.conftest import assert_user_error, run_script

INPUTS = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_state_dict_and_torchscript_exports_give_the_checkpoints_outputs(mnist_mlp: Path, tmp_path: Path) -> None:
    result = run_script(
        "export", "--ckpt_path", str(mnist_mlp), "--check", "test", "--output_dir", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("same class on 100 of 100 test inputs") == 2
    model = MLP.load_from_checkpoint(mnist_mlp).eval()
    with torch.no_grad():
        expected = model(INPUTS)
        rebuilt = MLP(**model.hparams)  # the tutorials' way back: the same model, then load_state_dict
        rebuilt.load_state_dict(torch.load(tmp_path / f"{mnist_mlp.stem}.pth", weights_only=True))
        torch.testing.assert_close(rebuilt.eval()(INPUTS), expected, atol=1e-5, rtol=0)
        scripted = torch.jit.load(tmp_path / f"{mnist_mlp.stem}.pt")
        torch.testing.assert_close(scripted(INPUTS), expected, atol=1e-5, rtol=0)


def test_onnx_export_gives_the_checkpoints_outputs_in_onnxruntime(mnist_mlp: Path, tmp_path: Path) -> None:
    reason = "the ONNX export is optional: pip install -e '.[onnx]'"
    onnxruntime = pytest.importorskip("onnxruntime", reason=reason)
    pytest.importorskip("onnxscript", reason=reason)
    args = ["--formats", "onnx", "--output_dir", str(tmp_path)]
    result = run_script("export", "--ckpt_path", str(mnist_mlp), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / f"{mnist_mlp.stem}.onnx"))
    logits = torch.from_numpy(session.run(None, {"images": INPUTS.numpy()})[0])
    with torch.no_grad():
        expected = MLP.load_from_checkpoint(mnist_mlp).eval()(INPUTS)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    assert torch.equal(logits.argmax(1), expected.argmax(1))


def test_onnx_export_without_its_packages_says_what_to_install(mnist_mlp: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"  # shadows an installed onnxruntime, so the test runs either way
    blocked.mkdir()
    (blocked / "onnxruntime.py").write_text("raise ImportError('No module named onnxruntime')\n")
    result = run_script(
        "export", "--ckpt_path", str(mnist_mlp), "--formats", "onnx", cwd=tmp_path, env={"PYTHONPATH": str(blocked)}
    )
    assert_user_error(result, "pip install -e '.[onnx]'")


def test_every_model_is_rebuilt_from_its_hyperparameters_for_its_state_dict(tmp_path: Path) -> None:
    """Airbench94's hyperparameters also hold the base class's options it fixes (optimizer): export.py crashed."""
    for model in (
        Airbench94(10, (3, 16, 16), widths=(8, 8, 8)),
        CNN(10, (1, 8, 8), channels=(4, 8)),
        MLP(10, (1, 8, 8)),
    ):
        assert "optimizer" in model.hparams
        rebuilt = export_state_dict(model.eval(), tmp_path / "weights.pth")
        x = torch.randn(4, *model.hparams.input_shape)
        torch.testing.assert_close(rebuilt(x), model(x))


def test_resnet9_with_test_time_flips_traces_for_any_batch_size() -> None:
    model = ResNet9(num_classes=10, input_shape=(1, 8, 8), width=0.125).eval()
    traced = model.to_torchscript(method="trace", example_inputs=model.example_input_array)  # a batch of 2
    with torch.no_grad():
        torch.testing.assert_close(traced(INPUTS[:5, :, :8, :8]), model(INPUTS[:5, :, :8, :8]))
