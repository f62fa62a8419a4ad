"""scripts/test.py end to end: a checkpoint tested on its own data, on a folder of images, and on bad input."""

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import assert_user_error, fit_accuracy, run_script
from tests.fake_data import write_mnist, write_png_folder


def test_test_on_the_checkpoints_own_data_and_on_its_images_as_files(
    mnist_mlp: Path, mnist_pngs: Path, tmp_path: Path
) -> None:
    args = ["--ckpt_path", str(mnist_mlp), "--json", str(tmp_path / "m.json")]
    result = run_script("test", *args, cwd=tmp_path, env={"PYTHONWARNINGS": ""})  # the warnings a user sees
    assert result.returncode == 0, result.stderr
    assert "Be aware" not in result.stderr and "Seed set" not in result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) >= {"test/acc", "test/f1", "test/auroc", "test/loss", "checkpoint"}
    assert metrics["test/acc"] == pytest.approx(fit_accuracy(mnist_mlp), abs=1e-6)
    assert "test/acc" in result.stdout
    # The per-class report, printed (10 classes) and saved beside the metrics; the most confused pairs too.
    report = (tmp_path / "m.classification_report.txt").read_text()
    assert report.strip() in result.stdout and "macro avg" in report
    assert len(metrics["classification_report"]) == 13 and "0 - zero" in metrics["classification_report"]  # +3 averages
    assert metrics["classification_report"]["accuracy"] == pytest.approx(metrics["test/acc"])
    assert metrics["most_confused"] == [] and "Most confused:   none (no mistake)" in result.stdout  # all right

    # The run given by its name, as to fit.py's --ckpt_path: its best checkpoint (or that one's calibrated copy).
    args = ["--ckpt_path", "mnist-mlp-1", "--images", str(mnist_pngs), "--json", str(tmp_path / "i.json")]
    result = run_script("test", *args, cwd=mnist_mlp.parents[2])
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "i.json").read_text())
    assert Path(metrics["checkpoint"]).name.startswith(mnist_mlp.stem)
    assert metrics["test/acc"] == pytest.approx(fit_accuracy(mnist_mlp), abs=1e-6)


def test_bad_checkpoints_and_data_end_with_one_line(mnist_mlp: Path, mnist_pngs: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    unsorted = tmp_path / "unsorted" / "misc"
    unsorted.mkdir(parents=True)
    write_png_folder(tmp_path / "unsorted", torch.zeros(1, 28, 28, dtype=torch.uint8).numpy(), [0], ["misc"])
    # The same number of classes, of images of the same shape, but other classes: the metrics would mean nothing.
    fashion = ["--data", "FashionMNIST", "--data.data_dir", str(write_mnist(tmp_path / "data", "FashionMNIST"))]
    cases = [
        (["--ckpt_path", str(tmp_path / "missing.ckpt")], ["no checkpoint at"]),
        (["--ckpt_path", str(tmp_path / "notes.ckpt")], ["is not a readable PyTorch checkpoint"]),
        (["--ckpt_path", str(tmp_path / "other.ckpt")], ["holds no model class or data preprocessing"]),
        (["--ckpt_path", str(mnist_mlp), "--data", "Digits"], ["the data has 10 classes of (1, 8, 8) images"]),
        (["--ckpt_path", str(mnist_mlp), "--images", str(tmp_path / "unsorted")], ["not in a folder named after"]),
        (["--ckpt_path", str(mnist_mlp), "--tta", "flip"], ["--tta flip averages", "trained on MNIST"]),
        # Image files say nothing of what they hold: the checkpoint's data does (the model was trained on digits).
        (["--ckpt_path", str(mnist_mlp), "--images", str(mnist_pngs), "--tta", "flip"], ["trained on MNIST"]),
        (["--ckpt_path", str(mnist_mlp), *fashion, "--data.download", "false"], ["(T-shirt/top, Trouser", "(0 - zero"]),
    ]
    for args, fragments in cases:
        assert_user_error(run_script("test", *args, cwd=tmp_path), *fragments)
