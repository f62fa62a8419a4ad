"""scripts/cross_validate.py end to end on scikit-learn's digits, and the stratified folds behind it."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from cli.repeated_fits import summarize
from datamodules import Digits
from tests.conftest import QUICK, run_script

DIGITS = ["--data", "Digits", "--model", "MLP", "--model.hidden_sizes", "[32]", *QUICK]
DIGITS += ["--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false"]


def test_folds_are_stratified_disjoint_and_cover_the_training_data() -> None:
    parts = []
    for fold in range(3):
        data = Digits(folds=3, fold=fold)
        data.setup("fit")
        parts.append(data)
    vals = [set(map(tuple, data.val_set.images.flatten(1).tolist())) for data in parts]
    assert all(not (a & b) for i, a in enumerate(vals) for b in vals[i + 1 :])
    for data in parts:
        assert len(data.train_set) + len(data.val_set) == 1438  # all but the 20% test part
        val_counts, train_counts = Counter(data.val_set.labels.tolist()), Counter(data.train_set.labels.tolist())
        for digit in range(10):  # each class is split 1:2 between validation and training
            assert val_counts[digit] / (val_counts[digit] + train_counts[digit]) == pytest.approx(1 / 3, abs=0.02)
    assert parts[0].test_set.labels.tolist() == parts[2].test_set.labels.tolist()  # the same test part


def test_cross_validation_runs_each_fold_and_writes_mean_and_std(tmp_path: Path) -> None:
    result = run_script("cross_validate", "--folds", "2", *DIGITS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir() if path.is_dir())
    assert runs == ["digits-mlp-1", "digits-mlp-2"]  # one TensorBoard run per fold
    for run in runs:
        assert list((tmp_path / "lightning_logs" / run).glob("events.out.tfevents.*"))
    record = json.loads((tmp_path / "lightning_logs" / "cross_validation_digits-mlp-1.json").read_text())
    assert record["folds"] == 2 and record["runs"] == ["lightning_logs/digits-mlp-1", "lightning_logs/digits-mlp-2"]
    for name in ("val/acc", "val/f1", "val/auroc", "test/acc", "test/f1", "test/auroc", "test/class_acc/0"):
        stats = record["metrics"][name]
        assert len(stats["values"]) == 2 and stats["mean"] == pytest.approx(sum(stats["values"]) / 2)
        assert stats["std"] >= 0
    assert f"val/acc           {record['metrics']['val/acc']['mean']:.4f} ± " in result.stdout
    output = result.stdout + result.stderr
    assert "class_acc/" not in result.stdout and "Restoring states" not in output and "Loaded model" not in output


def test_cross_validation_needs_two_folds(tmp_path: Path) -> None:
    result = run_script("cross_validate", "--folds", "1", *DIGITS, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == "error: --folds must be at least 2, got 1"


def test_cross_validation_under_ddp_prints_and_writes_its_summary_once(tmp_path: Path) -> None:
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--trainer.limit_train_batches", "2"]
    result = run_script("cross_validate", "--folds", "2", *DIGITS, *ddp, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert result.stdout.count("2-fold cross-validation") == 1 and result.stdout.count("Results:") == 1
    runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["cross_validation_digits-mlp-1.json", "digits-mlp-1", "digits-mlp-2"]


def test_a_diverged_run_gives_a_nan_summary_rather_than_a_crash() -> None:
    """A seed whose loss turned NaN: the other metrics are still summarized (statistics.stdev fails on NaN)."""
    summary = summarize([{"test/acc": 0.99, "test/loss": 0.1}, {"test/acc": 0.1, "test/loss": float("nan")}])
    assert math.isnan(summary["test/loss"]["mean"]) and math.isnan(summary["test/loss"]["std"])
    assert summary["test/acc"]["mean"] == pytest.approx(0.545) and summary["test/loss"]["values"][0] == 0.1
