"""scripts/find_label_issues.py end to end: k-fold on an image folder with swapped labels (stopped and resumed), a
checkpoint on a test split, the missing extra; and the known wrong labels of --data.label_noise."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cli.label_issues import CLEANLAB_MISSING, Probabilities, rank_label_issues, summary
from datamodules import Digits
from tests.conftest import ROOT, assert_user_error, run_script
from tests.fake_data import write_image_folder, write_mnist

QUIET = ["--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false"]
# Enough training for the MLP to learn the fake images' class bands from half of 48 images.
FOLDS = ["--folds", "2", "--data.num_workers", "0", "--data.batch_size", "8", "--max_epochs", "8", *QUIET]
SWAPPED = [("cat", 0, "dog"), ("dog", 5, "fox"), ("fox", 10, "cat")]  # (class, image, the folder it is moved to)


def swapped_image_folder(root: Path) -> tuple[Path, set[str]]:
    """Fake images of three classes, 16 each in train/, three of them moved into another class's folder."""
    write_image_folder(root, {"train": 16, "test": 2})
    moved = set()
    for name, index, other in SWAPPED:
        number = index + 16 * ["cat", "dog", "fox"].index(name)
        target = root / "train" / other / f"was-{name}-{number}.png"
        (root / "train" / name / f"{number}.png").rename(target)
        moved.add(str(target))
    return root, moved


def stopped_after_first_fold(args: list[str], cwd: Path, folds: Path) -> None:
    """Start the command and kill it (SIGKILL, no chance to clean up) once its first fold's file is written."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    script = str(ROOT / "scripts" / "find_label_issues.py")
    process = subprocess.Popen([sys.executable, script, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (folds / "fold-0.npz").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (folds / "fold-0.npz").is_file() and not (folds / "fold-1.npz").is_file()


def test_k_fold_ranks_the_swapped_images_first_and_goes_on_after_being_killed(tmp_path: Path) -> None:
    root, moved = swapped_image_folder(tmp_path / "images")
    args = ["--data", "ImageFolder", "--data.root", str(root), "--model", "MLP", "--model.hidden_sizes", "[32]"]
    args += [*FOLDS, "--model.lr", "0.01"]
    output = tmp_path / "lightning_logs" / "label_issues-imagefolder-mlp"
    stopped_after_first_fold(args, tmp_path, output / "folds")

    result = run_script("find_label_issues", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Fold 1 of 2: trained before" in result.stdout and "Fold 2 of 2: probabilities" in result.stdout
    runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
    assert runs[-1] == "label_issues-imagefolder-mlp" and len(runs) in (3, 4)  # a fold-2 run may have been killed
    rows = list(csv.DictReader((output / "label_issues.csv").open()))
    assert {row["image"] for row in rows[:3]} == moved, rows[:5]
    assert all(Path(row["image"]).is_file() for row in rows)
    first = next(row for row in rows if row["image"].endswith("was-cat-0.png"))
    assert (first["given"], first["suggested"]) == ("dog", "cat")
    assert float(first["p_suggested"]) > float(first["p_given"]) == float(first["label_quality"])
    with Image.open(output / "label_issues.png") as sheet:  # one row of 8: the flagged images, titled
        assert sheet.width > 2 * sheet.height
    events = EventAccumulator(str(output))
    events.Reload()
    assert events.Tags()["images"] == ["label_issues"]
    record = json.loads((output / "summary.json").read_text())
    assert record["images"] == 48 and record["flagged"] == len(rows) >= 3
    assert f"Flagged {len(rows)} of 48 images" in result.stdout and "by given class: " in result.stdout
    saved, _ = Probabilities.load(output / "probabilities.npz")
    assert sorted(saved.images) == sorted(str(path) for path in (root / "train").rglob("*.png"))

    other = run_script("find_label_issues", *args, "--max_epochs", "3", cwd=tmp_path)
    assert_user_error(other, "holds the folds of other options", "give the same options to go on")


def test_a_checkpoint_ranks_the_test_split_by_index(mnist_mlp: Path, tmp_path: Path) -> None:
    """Fake MNIST as the checkpoint was trained on, but three test labels changed: those flagged come first."""
    labels_file = write_mnist(tmp_path / "data") / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    content = bytearray(labels_file.read_bytes())
    changed = {7, 42, 93}
    for index in changed:
        content[8 + index] = (content[8 + index] + 5) % 10  # after the 8-byte IDX header
    labels_file.write_bytes(bytes(content))
    output = tmp_path / "issues"
    data = ["--data.data_dir", str(tmp_path / "data"), "--output", str(output), "--sheet_images", "8"]
    result = run_script("find_label_issues", "--ckpt", str(mnist_mlp), *data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((output / "label_issues.csv").open()))
    flagged = [int(row["image"]) for row in rows]
    found = [image for image in flagged if image in changed]  # the 1-epoch MLP is unsure (24% on average)
    assert len(found) >= 2 and flagged[: len(found)] == found, rows[:5]
    assert [float(row["label_quality"]) for row in rows] == sorted(float(row["label_quality"]) for row in rows)
    assert (output / "label_issues.png").is_file() and f"Flagged {len(rows)} of 100 images" in result.stdout
    refused = run_script("find_label_issues", "--ckpt", str(mnist_mlp), "--split", "train", cwd=tmp_path)
    assert_user_error(refused, "--split train with --ckpt", "not out-of-sample")


def test_without_cleanlab_one_line_says_what_to_install(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['cleanlab'] = None; sys.argv[0] = 'find_label_issues.py'; "
    blocked += "from cli.commands.find_label_issues import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", blocked, "--config", str(ROOT / "configs" / "digits.yaml")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stderr.strip().splitlines() == [f"error: {CLEANLAB_MISSING}"] and result.returncode == 1
    assert not (tmp_path / "lightning_logs").exists()


def test_label_noise_changes_a_seeded_share_of_the_training_labels_only() -> None:
    clean, noisy = Digits(folds=5), Digits(folds=5, label_noise=0.05)
    for data in (clean, noisy):
        data.setup("fit")
        data.setup("test")
    pool = noisy.image_ids["train"] + noisy.image_ids["val"]
    assert len(noisy.changed_labels) == round(0.05 * len(pool)) and set(noisy.changed_labels) <= set(pool)
    labels = {
        image: int(label)
        for part in ("train", "val", "test")
        for image, label in zip(noisy.image_ids[part], getattr(noisy, f"{part}_set").labels, strict=True)
    }
    original = {
        image: int(label)
        for part in ("train", "val", "test")
        for image, label in zip(clean.image_ids[part], getattr(clean, f"{part}_set").labels, strict=True)
    }
    differ = {image for image in labels if labels[image] != original[image]}
    assert differ == set(noisy.changed_labels)  # each changed to another class; the test part never
    assert all(original[image] == label for image, label in noisy.changed_labels.items())
    with pytest.raises(ValueError, match="label_noise must be a fraction"):
        Digits(label_noise=1.5)


def test_summary_scores_the_flagged_images_against_the_changed_ones() -> None:
    """Three images whose given label the probabilities contradict, of which two had their label changed."""
    probabilities = np.full((30, 3), 0.05)
    labels = np.arange(30) % 3
    probabilities[np.arange(30), labels] = 0.9
    for image in (3, 7, 11):
        probabilities[image] = np.roll([0.9, 0.05, 0.05], labels[image] + 1)
    issues = rank_label_issues(Probabilities(probabilities, labels, list(range(30))))
    assert sorted(issues.ranked.tolist()) == [3, 7, 11]
    record = summary(issues, ["a", "b", "c"], {3: 1, 7: 2, 20: 0})
    assert record["label_noise"] == {"changed": 3, "changed_and_flagged": 2, "precision": 2 / 3, "recall": 2 / 3}
    assert record["flagged_by_given_class"] == {"a": 1, "b": 1, "c": 1}


def test_folds_under_ddp_keep_each_image_with_its_probabilities(tmp_path: Path) -> None:
    """The two processes predict alternate batches of each held-out fold: gathered, each row must be its image's."""
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--trainer.limit_train_batches", "2"]
    args = ["--data", "Digits", "--model", "MLP", "--model.hidden_sizes", "[32]", "--data.batch_size", "64"]
    args += ["--folds", "2", "--max_epochs", "1", "--data.num_workers", "0", *QUIET]
    result = run_script("find_label_issues", *args, *ddp, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Flagged ") == 1 and result.stdout.count("Fold 2 of 2: probabilities") == 1
    saved, _ = Probabilities.load(tmp_path / "lightning_logs" / "label_issues-digits-mlp" / "probabilities.npz")
    from sklearn.datasets import load_digits

    assert len(saved.images) == 1438 and saved.images == sorted(saved.images)  # all but Digits' 20% test part
    assert (saved.labels == load_digits().target[saved.images]).all()
