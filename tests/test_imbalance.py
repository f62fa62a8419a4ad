"""Imbalanced classes: the counts line, class weights (and deferred re-weighting), the balanced sampler, balanced
accuracy as the monitored metric, and the per-class report, on an imbalanced image folder of 60/12/6 images."""

import importlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from torch.nn import functional as F

import models
from datamodules import ImageFolder
from datamodules.batches import ShardedBatchSampler
from models import CNN, FocalLoss
from models.classifier import ImageClassifier
from tests.conftest import QUICK, assert_user_error, run_fit
from tests.fake_data import write_image_folder

COUNTS = (60, 12, 6)  # training images of the classes a, b, c


def write_imbalanced_folder(root: Path) -> Path:
    """``root/train/{a,b,c}`` with 60, 12 and 6 images of 8x8 pixels, and a balanced ``root/test`` of 4 each."""
    for name, count in zip("abc", COUNTS, strict=True):
        write_image_folder(root, {"train": count}, classes=(name,), size=(8, 8), seed=ord(name))
    return write_image_folder(root, {"test": 4}, classes=("a", "b", "c"), size=(8, 8))


def hand_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, smoothing: float) -> float:
    """The weighted, label-smoothed cross-entropy written out: each sample's smoothed loss times its true class's
    weight; the sum over the samples divided by their weights."""
    log_p = logits.log_softmax(-1)
    k = logits.shape[1]
    total = 0.0
    for row, target in zip(log_p, targets.tolist(), strict=True):
        total += weight[target] * (-(1 - smoothing) * row[target] - smoothing / k * row.sum())
    return float(total / weight[targets].sum())


def training_loss(model: ImageClassifier, logits: torch.Tensor, targets: torch.Tensor, epoch: int = 0) -> float:
    """The training loss that ``model`` computes for a batch whose logits are ``logits``, at ``epoch``."""
    with (
        mock.patch.object(type(model), "current_epoch", new_callable=mock.PropertyMock, return_value=epoch),
        mock.patch.object(model, "forward", return_value=logits),
    ):
        model.train()
        loss, _, _ = model._shared_step((torch.zeros(len(targets), 3, 8, 8), targets), "train")
        model.eval()
        val_loss, _, _ = model._shared_step((torch.zeros(len(targets), 3, 8, 8), targets), "val")
    if not targets.is_floating_point():  # validation's loss is never weighted
        plain = F.cross_entropy(logits, targets, label_smoothing=model.hparams.label_smoothing)
        assert float(val_loss) == pytest.approx(float(plain), rel=1e-5)
    return float(loss)


def test_class_weights_weight_the_training_loss_as_written_out_from_their_epoch_on() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 3, generator=generator), torch.tensor([0, 0, 0, 1, 2, 2])
    weight = torch.tensor([0.5, 2.0, 4.0])
    model = CNN(3, (3, 8, 8), class_weights=weight.tolist(), class_weights_from_epoch=2, label_smoothing=0.1)
    assert training_loss(model, logits, targets, epoch=1) == pytest.approx(
        hand_cross_entropy(logits, targets, torch.ones(3), 0.1), rel=1e-5
    )  # deferred: the plain loss before epoch 2
    assert training_loss(model, logits, targets, epoch=2) == pytest.approx(
        hand_cross_entropy(logits, targets, weight, 0.1), rel=1e-5
    )
    # Mixup's soft targets: each sample weighted by its classes' weights, by their shares of its target.
    soft = F.one_hot(targets, 3).float() * 0.7 + F.one_hot(targets.roll(1), 3).float() * 0.3
    sample_weight = (soft * weight).sum(-1)
    by_hand = (sample_weight * -(soft * logits.log_softmax(-1)).sum(-1)).sum() / sample_weight.sum()
    assert training_loss(CNN(3, (3, 8, 8), class_weights=weight.tolist()), logits, soft) == pytest.approx(
        float(by_hand), rel=1e-5
    )
    # FocalLoss takes them too; with gamma 0 it is the weighted cross-entropy.
    focal = CNN(3, (3, 8, 8), class_weights=weight.tolist(), loss=FocalLoss(gamma=0))
    assert training_loss(focal, logits, targets) == pytest.approx(
        hand_cross_entropy(logits, targets, weight, 0), rel=1e-5
    )
    # Nothing of them in the checkpoint's weights: they come from the options.
    assert not [name for name in model.state_dict() if "weight" in name and "criterion" in name]


def test_class_counts_balanced_weights_and_the_sampler_on_both_paths(tmp_path: Path) -> None:
    root = write_imbalanced_folder(tmp_path / "images")
    for in_memory in (True, False):
        data = ImageFolder(str(root), num_workers=0, batch_size=8, in_memory=in_memory, sampler="balanced")
        data.setup("fit")
        counts = data.class_counts
        assert counts == [54, 11, 5] and sum(counts) == len(data.train_set)  # after the stratified validation part
        model = CNN(3, data.input_shape, class_weights="balanced")
        model._trainer = mock.Mock(datamodule=data)
        model.setup("fit")
        n = sum(counts)
        assert model.class_weight.tolist() == pytest.approx([n / (3 * count) for count in counts])  # scikit-learn's
        # Each epoch draws len(train_set) images, each class about equally often; epochs differ, and are seeded.
        batches = data.train_dataloader()
        seen, epochs = Counter(), []
        for epoch in range(40 if in_memory else 10):
            batches.sampler.set_epoch(epoch)
            labels = torch.cat([y for _, y in batches])
            assert len(labels) == n
            seen.update(labels.tolist())
            epochs.append(labels)
        total = sum(seen.values())
        assert [seen[c] / total for c in range(3)] == pytest.approx([1 / 3] * 3, abs=0.05 if in_memory else 0.08)
        assert not torch.equal(epochs[0], epochs[1])
        batches.sampler.set_epoch(1)
        assert torch.equal(torch.cat([y for _, y in batches]), epochs[1])


def test_the_balanced_sampler_shares_one_draw_exactly_among_processes() -> None:
    weights = torch.tensor([1 / 54] * 54 + [1 / 11] * 11 + [1 / 5] * 5, dtype=torch.float64)
    whole = ShardedBatchSampler(70, 8, True, seed=3, weights=weights)
    ranks = [ShardedBatchSampler(70, 8, True, seed=3, rank=rank, world_size=2, weights=weights) for rank in (0, 1)]
    shares = [[index for batch in rank for index in batch] for rank in ranks]
    assert len(ranks[0]) == len(ranks[1])  # the same number of steps on every process
    assert Counter(shares[0] + shares[1]) == Counter(index for batch in whole for index in batch)
    assert sum(map(len, shares)) == 70


RECORDER = """
from models import CNN

class Recorder(CNN):
    \"\"\"The CNN, writing down the sample indices of each training batch of each rank.\"\"\"

    def training_step(self, batch, batch_idx):
        indices = self.trainer.datamodule.train_batches.indices.tolist()
        with open(f"indices-epoch{self.current_epoch}-rank{self.global_rank}.txt", "a") as file:
            file.write(" ".join(map(str, indices)) + "\\n")
        return super().training_step(batch, batch_idx)
"""


def test_ddp_fit_on_an_imbalanced_folder_says_so_samples_weights_and_reports_as_scikit_learn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two CPU processes: the sampler's one draw shared exactly; the counts of the whole training part; the best
    checkpoint by val/bacc; the report and most confused pairs from both processes' predictions."""
    from sklearn.metrics import classification_report, confusion_matrix
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = write_imbalanced_folder(tmp_path / "images")
    (tmp_path / "recorder.py").write_text(RECORDER)
    args = ["--model", "recorder.Recorder", "--data", "ImageFolder", "--data.root", str(root), *QUICK]
    args += ["--data.batch_size", "8", "--max_epochs", "2", "--data.sampler", "balanced"]
    args += ["--model.class_weights", "balanced", "--model.class_weights_from_epoch", "1"]
    args += ["--checkpoint.monitor", "val/bacc", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    result = run_fit(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = "3 classes, 5 to 54 training images each (imbalanced 10.8x: see --model.class_weights and --data.sampler)"
    assert result.stdout.count(line) == 1, result.stdout  # the whole training part's counts, said once
    run = tmp_path / "lightning_logs" / "imagefolder-recorder-1"
    assert yaml.safe_load((run / "hparams.yaml").read_text())["class_counts"] == {"a": 54, "b": 11, "c": 5}
    text_tags = set()
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        text_tags |= set(accumulator.Tags()["tensors"])
    assert "data/class_counts/text_summary" in text_tags

    # Each epoch, the two processes take the same number of batches, and together exactly the one draw.
    data = ImageFolder(str(root), num_workers=0, batch_size=8)
    data.setup("fit")
    weights = data.sample_weights(data.train_set.labels)
    for epoch in (0, 1):
        ranks = [(tmp_path / f"indices-epoch{epoch}-rank{rank}.txt").read_text().splitlines() for rank in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == 5  # 70 images, 8 a batch, on 2 processes
        drawn = ShardedBatchSampler(70, 8, True, seed=42, weights=weights)
        drawn.set_epoch(epoch)
        assert Counter(int(i) for batch in ranks[0] + ranks[1] for i in batch.split()) == Counter(
            i for batch in drawn for i in batch
        )

    # The best checkpoint by balanced accuracy, named after it; the report is scikit-learn's on its predictions.
    tested = json.loads((run / "test_metrics.json").read_text())
    assert re.fullmatch(r"best-epoch=\d-val_bacc=[\d.]+\.ckpt", Path(tested["checkpoint"]).name)
    assert {"test/bacc", "test/acc", "test/f1"} <= set(tested)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "recorder", raising=False)  # another test's recorder.py, imported before
    model = importlib.import_module("recorder").Recorder.load_from_checkpoint(tmp_path / tested["checkpoint"])
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    predicted = torch.cat(trainer.predict(model, datamodule=data)).argmax(-1).numpy()
    true = data.test_set.labels.numpy()
    names = ["a", "b", "c"]
    options = {"labels": [0, 1, 2], "target_names": names, "zero_division": 0}
    assert (run / "classification_report.txt").read_text() == classification_report(
        true, predicted, digits=4, **options
    )
    assert tested["classification_report"] == classification_report(true, predicted, output_dict=True, **options)
    counts = confusion_matrix(true, predicted, labels=[0, 1, 2])
    pairs = sorted((-counts[i, j], i, j) for i in range(3) for j in range(3) if i != j and counts[i, j])[:5]
    assert tested["most_confused"] == [f"{names[i]} -> {names[j]}: {-count}" for count, i, j in pairs]
    assert tested["test/bacc"] == pytest.approx(np.mean([counts[c, c] / counts[c].sum() for c in range(3)]))
    assert f"Most confused:   {'; '.join(tested['most_confused']) or 'none (no mistake)'}" in result.stdout
    assert "weighted avg" in result.stdout  # the report, printed for 3 classes


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--checkpoint.monitor", "val/bcc"],
            ["--checkpoint.monitor val/bcc: the run logs no such metric", "val/bacc"],
        ),
        (["--model.class_weights", "[1, 2]"], ["--model.class_weights [1.0, 2.0]: give 3 numbers"]),
    ],
)
def test_a_bad_monitor_or_bad_weights_are_refused_in_one_line(tmp_path: Path, args: list[str], fragments) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 4}, size=(8, 8))
    result = run_fit("--model", "CNN", "--data", "ImageFolder", "--data.root", str(root), *QUICK, *args, cwd=tmp_path)
    assert_user_error(result, *fragments)
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


def test_early_stopping_and_the_checkpoint_follow_the_direction_of_their_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    from cli.parser import build_cli

    monkeypatch.chdir(tmp_path)
    args = ["--data", "Digits", "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/bacc"]
    cli = build_cli([*args, "--checkpoint.monitor", "val/ece"])
    (stopping,) = [callback for callback in cli.trainer.callbacks if isinstance(callback, EarlyStopping)]
    assert stopping.mode == "max" and cli.trainer.checkpoint_callback.mode == "min"  # the highest bacc, lowest ECE
    assert cli.trainer.checkpoint_callback.filename == "best-epoch={epoch}-val_ece={val/ece:.4f}"
    # A mode given against the metric's direction, and negative weights, are refused (one line: the test above).
    with pytest.raises(ValueError, match="--checkpoint.mode max would keep the highest val/loss: use min"):
        build_cli(["--data", "Digits", "--checkpoint.monitor", "val/loss", "--checkpoint.mode", "max"])
    with pytest.raises(ValueError, match="none negative"):
        build_cli(["--data", "Digits", "--model.class_weights", "[1, -2, 1, 1, 1, 1, 1, 1, 1, 1]"])


def test_every_model_takes_the_class_weights_options() -> None:
    shipped = [getattr(models, name) for name in models.__all__]
    classifiers = [cls for cls in shipped if isinstance(cls, type) and issubclass(cls, ImageClassifier)]
    assert {cls.__name__ for cls in classifiers} >= {"MLP", "CNN", "ResNet9", "Airbench94", "Pretrained"}
    for cls in classifiers:
        assert {"class_weights", "class_weights_from_epoch"} <= cls.init_arguments(), cls.__name__
