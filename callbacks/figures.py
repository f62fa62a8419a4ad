"""Confusion matrix and misclassified images in TensorBoard's IMAGES tab, for validation and test."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix
from torchvision.utils import make_grid


class ClassificationFigures(Callback):
    """After each validation and test epoch, add a confusion matrix (a figure) and a grid of up to ``max_images``
    misclassified images to TensorBoard's IMAGES tab, as ``<stage>/confusion_matrix`` and
    ``<stage>/misclassified``; the true and predicted class of each image are in the TEXT tab.

    Needs the model's validation and test steps to return ``{"loss", "preds"}`` (``ImageClassifier``
    does). Does nothing unless the logger is TensorBoard's. The mistakes are gathered on the device:
    each batch's first mistakes join a buffer of ``max_images``, which goes to the CPU at the end of
    the epoch; every 16 batches one look at the buffer (one wait for the device) ends the gathering
    for the epoch once it holds only mistakes.

    Args:
        max_images: Most misclassified images shown per epoch; 0 shows none.
    """

    def __init__(self, max_images: int = 32) -> None:
        if max_images < 0:
            raise ValueError(f"max_images must be 0 or more, got {max_images}")
        self.max_images = max_images
        self.confusion: MulticlassConfusionMatrix | None = None
        self.kept: list[Tensor] = []  # images, labels, predictions, and whether each is a mistake
        self.batches = 0
        self.full = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(trainer.logger, TensorBoardLogger):
            self.confusion = MulticlassConfusionMatrix(pl_module.hparams.num_classes, validate_args=False)

    def _start(self, pl_module: LightningModule) -> None:
        if self.confusion is not None:
            self.confusion = self.confusion.to(pl_module.device)
            self.confusion.reset()
        self.kept, self.batches, self.full = [], 0, False

    def _collect(self, outputs: Any, batch: Any) -> None:
        if self.confusion is None or not isinstance(outputs, dict) or "preds" not in outputs:
            return
        images, labels, preds = batch[0], batch[1], outputs["preds"]
        self.confusion.update(preds, labels)
        if not self.max_images or self.full:
            return
        wrong = preds != labels
        candidates = [images.detach(), labels, preds, wrong]
        if self.kept:
            candidates = [torch.cat(pair) for pair in zip(self.kept, candidates, strict=True)]
        # Mistakes first, in the order seen (a stable sort): a fixed-size selection, so nothing waits for the device.
        order = torch.sort(~candidates[3], stable=True).indices[: self.max_images]
        self.kept = [tensor[order] for tensor in candidates]
        self.batches += 1
        if self.batches % 16 == 0:
            self.full = len(order) == self.max_images and bool(self.kept[3].all())

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.confusion is None or trainer.sanity_checking:
            return
        names = getattr(trainer.datamodule, "class_names", None) or [str(i) for i in range(self.confusion.num_classes)]
        figure, _ = self.confusion.plot(labels=names, add_text=len(names) <= 20)  # computed over all DDP ranks
        experiment = trainer.logger.experiment
        experiment.add_figure(f"{stage}/confusion_matrix", figure, trainer.global_step)
        if self.kept:
            images, labels, preds, wrong = (tensor.cpu() for tensor in self.kept)
            if wrong.any():
                grid = make_grid(images[wrong].float(), nrow=8, normalize=True, scale_each=True)
                experiment.add_image(f"{stage}/misclassified", grid, trainer.global_step)
                pairs = zip(labels[wrong].tolist(), preds[wrong].tolist(), strict=True)
                text = "True → predicted class, row by row: " + ", ".join(f"{names[t]} → {names[p]}" for t, p in pairs)
                experiment.add_text(f"{stage}/misclassified", text, trainer.global_step)
        self.kept = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx=0
    ) -> None:
        self._collect(outputs, batch)

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx=0
    ) -> None:
        self._collect(outputs, batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")
