"""scripts/quantize.py end to end: dynamic quantization of the MLP, static quantization and QAT of the CNN."""

import re
from pathlib import Path

import pytest

from cli.commands.quantize import check_method
from cli.errors import CommandError
from models import CNN, Airbench94
from tests.conftest import QUICK, fit_accuracy, run_fit, run_script

ROW = re.compile(r"^(float32|int8 \w+)\s+([\d.]+)%\s+([\d.]+) MiB\s+([\d.]+) ms$", re.MULTILINE)


def quantize(checkpoint: Path, *args: str) -> tuple[dict[str, tuple[float, float]], str]:
    """Run scripts/quantize.py; returns each printed model's test accuracy (0-1) and size in MiB, and its output."""
    result = run_script("quantize", "--ckpt_path", str(checkpoint), "--latency_runs", "5", *args, cwd=checkpoint.parent)
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr  # torch.ao's warnings (README's Quantize section says why it is used)
    rows = {name: (float(acc) / 100, float(size)) for name, acc, size, _ in ROW.findall(result.stdout)}
    return rows, result.stdout


def test_dynamic_quantization_of_the_mlp(mnist_mlp: Path) -> None:
    rows, _ = quantize(mnist_mlp)
    (float_acc, float_size), (int8_acc, int8_size) = rows["float32"], rows["int8 dynamic"]
    assert abs(float_acc - fit_accuracy(mnist_mlp)) < 1e-4
    assert int8_size < 0.5 * float_size and abs(int8_acc - float_acc) <= 0.05


def test_static_quantization_and_quantization_aware_training_of_the_cnn(tmp_path: Path) -> None:
    result = run_fit("--model", "CNN", "--model.channels", "[8,16]", "--data", "Digits", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "lightning_logs" / "digits-cnn-1" / "checkpoints" / "last.ckpt"
    rows, _ = quantize(checkpoint, "--method", "static", "--calibration_batches", "4")
    (float_acc, float_size), (int8_acc, int8_size) = rows["float32"], rows["int8 static"]
    assert int8_size < 0.5 * float_size and abs(int8_acc - float_acc) <= 0.1
    rows, output = quantize(checkpoint, "--method", "qat", "--calibration_batches", "4", "--qat_batches", "10")
    assert re.search(r"^Epoch 0/0 +10 steps", output, re.MULTILINE)  # the fine-tuning's progress, as a line
    assert set(rows) == {"float32", "int8 static", "int8 qat"} and rows["int8 static"] == (int8_acc, int8_size)
    qat_acc, qat_size = rows["int8 qat"]
    assert qat_size < 0.5 * float_size and abs(qat_acc - float_acc) <= 0.1


@pytest.mark.parametrize("method", ["static", "qat"])
def test_static_and_qat_refuse_airbench94_in_one_line(method: str) -> None:
    """Its int8 model fell to 11.35% on MNIST (with the float32 whitening, FX graph mode could not even trace it)."""
    with pytest.raises(CommandError, match=f"--method {method} cannot quantize Airbench94: .* it quantizes MLP, CNN"):
        check_method(Airbench94(10, (1, 16, 16), widths=(8, 8, 8)), method)
    check_method(Airbench94(10, (1, 16, 16), widths=(8, 8, 8)), "dynamic")
    check_method(CNN(10, (1, 16, 16)), method)
