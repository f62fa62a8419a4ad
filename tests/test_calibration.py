"""scripts/calibrate.py end to end: the calibrated copy of a checkpoint, and test.py, predict.py and export.py using
its temperature."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from cli.fitting import fit
from cli.parser import build_cli
from cli.resume import check_checkpoint
from models import MLP
from tests.conftest import assert_user_error, run_fit, run_script


def test_calibrated_checkpoint_reloads_and_test_predict_and_export_use_its_temperature(
    mnist_mlp: Path, mnist_pngs: Path, tmp_path: Path
) -> None:
    original = hashlib.sha256(mnist_mlp.read_bytes()).hexdigest()
    result = run_script("calibrate", str(mnist_mlp.parents[1]), cwd=tmp_path)  # the run folder: its best checkpoint
    assert result.returncode == 0, result.stderr
    temperature = float(re.search(r"Temperature: +T = ([\d.]+)", result.stdout)[1])
    calibrated = mnist_mlp.with_name(f"{mnist_mlp.stem}-calibrated.ckpt")
    assert hashlib.sha256(mnist_mlp.read_bytes()).hexdigest() == original  # the original stays as it was
    model = MLP.load_from_checkpoint(calibrated).eval()
    assert float(model.temperature) == pytest.approx(temperature, abs=1e-4) and temperature != 1
    assert float(MLP.load_from_checkpoint(mnist_mlp).temperature) == 1
    rows = re.findall(r"^(val|test) +(before|after) +([\d.]+)%", result.stdout, re.MULTILINE)
    assert len(rows) == 4 and len({accuracy for *_, accuracy in rows[2:]}) == 1  # the test accuracy unchanged

    # test.py: the metrics of logits / T.
    assert run_script("test", "--ckpt_path", str(calibrated), "--json", "m.json", cwd=tmp_path).returncode == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["temperature"] == pytest.approx(temperature, abs=1e-4)
    after = re.search(r"^test +after +([\d.]+)% +([\d.]+) +([\d.]+)%", result.stdout, re.MULTILINE)
    assert metrics["test/nll"] == pytest.approx(float(after[2]), abs=1e-4)
    assert metrics["test/ece"] == pytest.approx(float(after[3]) / 100, abs=1e-4)

    # predict.py: the same classes, probabilities softmax(log p / T) of the uncalibrated ones.
    predicted = {}
    for name, checkpoint in (("before", mnist_mlp), ("after", calibrated)):
        args = ["--ckpt_path", str(checkpoint), str(mnist_pngs), "--top_k", "10", "--quiet", "true", "--json", name]
        assert run_script("predict", *args, cwd=tmp_path).returncode == 0
        predicted[name] = json.loads((tmp_path / name).read_text())
    for before, after in zip(predicted["before"], predicted["after"], strict=True):
        assert before["predictions"][0]["class"] == after["predictions"][0]["class"]
        p = {item["class"]: item["probability"] for item in before["predictions"]}
        names = list(p)
        expected = (torch.tensor([p[name] for name in names]).clamp(min=1e-6).log() / temperature).softmax(-1)
        assert after["predictions"][0]["probability"] == pytest.approx(float(expected[0]), abs=2e-3)

    # export.py: every export divides its logits by T, and the parity check holds.
    args = ["--ckpt_path", str(calibrated), "--check", "test", "--output_dir", "."]
    exported = run_script("export", *args, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    inputs = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        scripted = torch.jit.load(tmp_path / f"{calibrated.stem}.pt")
        torch.testing.assert_close(scripted(inputs), model(inputs) / model.temperature, atol=1e-5, rtol=1e-5)


def test_calibration_without_a_validation_split_is_refused_in_one_line(tmp_path: Path, mnist_root: Path) -> None:
    data = ["--data.data_dir", str(mnist_root), "--data.download", "false", "--data.val_size", "0"]
    result = run_fit(*data, "--calibrate", "true", cwd=tmp_path)
    assert_user_error(result, "--data.val_size 0 leaves no validation split", "hold one out")
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


def test_a_checkpoint_from_before_calibration_resumes_and_a_new_run_from_weights_starts_uncalibrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints written before the temperature buffer lack it (T = 1, as then); --init_weights resets T to 1."""
    monkeypatch.chdir(tmp_path)
    model = MLP(10, (1, 8, 8), hidden_sizes=[16])
    state = {name: value for name, value in model.state_dict().items() if name != "temperature"}
    torch.save({"state_dict": state, "loops": {}}, tmp_path / "old.ckpt")
    assert float(check_checkpoint(str(tmp_path / "old.ckpt"), model)["state_dict"]["temperature"]) == 1

    calibrated = {**model.state_dict(), "temperature": torch.tensor(0.5)}
    torch.save({"state_dict": calibrated, "loops": {}}, tmp_path / "calibrated.ckpt")
    cli = build_cli(["--data", "Digits", "--model.hidden_sizes", "[16]", "--init_weights", "calibrated.ckpt"])
    cli.trainer.fit = lambda *args, **kwargs: None  # the weights are loaded before training starts
    fit(cli)
    assert float(cli.model.temperature) == 1
