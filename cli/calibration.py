"""Temperature scaling of a trained checkpoint, fitted on its validation split: what scripts/calibrate.py and
``fit.py --calibrate`` share."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor
from torchmetrics.utilities.distributed import gather_all_tensors

from cli.errors import CommandError
from cli.run_folders import relative
from datamodules import ClassificationDataModule
from models import ImageClassifier
from models.calibration import calibration_figures, fit_temperature

SPLITS = ("val", "test")


@dataclass
class Calibration:
    """A calibrated checkpoint: its path, its temperature, and each split's figures before and after."""

    path: Path
    temperature: float
    before: dict[str, dict[str, float]]  # "val" and "test": "acc", "nll", "ece" of the checkpoint as it was
    after: dict[str, dict[str, float]]  # the same with the fitted temperature
    images: int  # validation images the temperature was fitted on


class SplitLogits(LightningModule):
    """For ``Trainer.predict``: the logits ``model`` gives a split's batches in evaluation (test-time augmentation
    and its temperature included, as its test and predict steps), with their labels."""

    def __init__(self, model: ImageClassifier, datamodule: ClassificationDataModule) -> None:
        super().__init__()
        self.model = model
        self.data = datamodule

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.data.on_after_batch_transfer(batch, dataloader_idx)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        return self.model.tta_logits(images).float(), labels


def split_logits(
    trainer: Trainer, model: ImageClassifier, datamodule: ClassificationDataModule, split: str
) -> tuple[Tensor, Tensor]:
    """The logits and labels of the ``val`` or ``test`` split in its order, from every DDP process (each image once)."""
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    # Without the run's callbacks: they act on the model they were made for (the Pretrained model's
    # BackboneFinetuning asks SplitLogits for its backbone), and the logits need none of them.
    callbacks, trainer.callbacks = trainer.callbacks, []
    try:
        outputs = trainer.predict(SplitLogits(model, datamodule), dataloaders=loader)
    finally:
        trainer.callbacks = callbacks
    logits, labels = (torch.cat(parts) for parts in zip(*outputs, strict=True))
    if trainer.world_size > 1:  # uneven shards: torchmetrics' gather pads and trims them
        device = trainer.strategy.root_device
        positions = torch.cat(loader.sampler.index_batches())  # the samples this process predicted, in its order
        logits, labels, positions = (
            torch.cat(gather_all_tensors(part.to(device))).cpu() for part in (logits, labels, positions)
        )
        order = positions.argsort()  # the processes take turns by batch: back to the split's order
        logits, labels = logits[order], labels[order]
    return logits, labels


def load_weights(model: ImageClassifier, path: Path | str) -> dict[str, Any]:
    """Give ``model`` the weights of the checkpoint at ``path`` (and the temperature, 1 where it holds none);
    returns the checkpoint."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.on_load_checkpoint(checkpoint)  # the temperature 1 of a checkpoint from before calibration
    model.load_state_dict(checkpoint["state_dict"])
    return checkpoint


def calibrate_checkpoint(
    trainer: Trainer, model: ImageClassifier, datamodule: ClassificationDataModule, path: Path
) -> Calibration:
    """Fit the temperature of the checkpoint at ``path`` on the validation split (``model`` gets its weights), and
    write a copy of the checkpoint that holds it beside it, as ``<name>-calibrated.ckpt``; the original stays.

    The checkpoint's own temperature (1 unless calibrated before) is multiplied by the one fitted to its logits.
    The test split is measured before and after, never fitted on.
    """
    for split in SPLITS:
        if getattr(datamodule, f"{split}_set") is None:
            datamodule.setup("validate" if split == "val" else "test")
    if len(datamodule.val_set) == 0:
        raise CommandError(
            f"{relative(path)} was trained without a validation split (--data.val_size 0): nothing to fit the "
            "temperature on; train again holding one out, e.g. --data.val_size 5000"
        )
    checkpoint = load_weights(model, path)
    logits = {split: split_logits(trainer, model, datamodule, split) for split in SPLITS}
    factor = fit_temperature(*logits["val"])
    temperature = float(model.temperature) * factor
    checkpoint["state_dict"]["temperature"] = torch.tensor(temperature)
    calibrated = path.with_name(f"{path.stem}-calibrated.ckpt")
    trainer.strategy.save_checkpoint(checkpoint, calibrated)  # by global rank 0
    trainer.strategy.barrier("calibrated checkpoint written")
    return Calibration(
        calibrated,
        temperature,
        {split: calibration_figures(*logits[split]) for split in SPLITS},
        {split: calibration_figures(logits[split][0] / factor, logits[split][1]) for split in SPLITS},
        len(logits["val"][1]),
    )


def calibration_table(calibration: Calibration) -> list[str]:
    """The temperature, and each split's accuracy, NLL and ECE before and after it, as lines to print."""
    lines = [
        f"Temperature:     T = {calibration.temperature:.4f} (fitted on {calibration.images:,} validation images)",
        f"{'':<13}{'accuracy':>10}{'NLL':>10}{'ECE':>9}",
    ]
    for split in SPLITS:
        for when, figures in (("before", calibration.before[split]), ("after", calibration.after[split])):
            lines.append(f"{split:<5}{when:<8}{figures['acc']:>10.2%}{figures['nll']:>10.4f}{figures['ece']:>9.2%}")
    return lines


def calibration_line(calibration: Calibration) -> str:
    """``ECE 4.10% -> 0.90% (T = 1.52)``: the test split's expected calibration error before and after."""
    before, after = calibration.before["test"]["ece"], calibration.after["test"]["ece"]
    return f"ECE {before:.2%} -> {after:.2%} (T = {calibration.temperature:.2f})"
