"""Confusion matrices and labelled misclassified images, for validation and test, in the loggers that show figures."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from datamodules.names import shown_name
from loggers.media import log_figure, log_text, media_loggers


class ClassificationFigures(Callback):
    """After each validation and test epoch, show the confusion matrix (counts, and normalized by true class) and
    up to ``max_images`` misclassified images, each labelled "true → predicted (confidence)", as
    ``<stage>/confusion_matrix``, ``<stage>/confusion_matrix_normalized`` and ``<stage>/misclassified``
    (TensorBoard's IMAGES tab; MLflow artifacts; W&B images); the mistakes are also a table in TensorBoard's TEXT tab.

    The mistakes shown are the most confident ones, taken in turn from each true class (the most confident
    mistake of every class, then the second of every class, ...), so that a split stored sorted by class
    (image folders) shows its errors across the classes, not those of its first class.

    Needs the model's validation and test steps to return ``{"loss", "preds"}`` and optionally ``"confidence"``
    (``ImageClassifier`` does). Does nothing unless a logger shows figures (TensorBoard, MLflow, W&B). The
    mistakes are chosen on the device, in a buffer of ``max_images`` that goes to the CPU at the end of the
    epoch: nothing waits for the device during the epoch.

    Args:
        max_images: Most misclassified images shown per epoch; 0 shows none.
    """

    def __init__(self, max_images: int = 32) -> None:
        if max_images < 0:
            raise ValueError(f"max_images must be 0 or more, got {max_images}")
        self.max_images = max_images
        self.confusion: MulticlassConfusionMatrix | None = None
        self.kept: list[Tensor] = []  # images, labels, predictions and confidences

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "predict" and media_loggers(trainer):  # prediction has no labels: no figures
            self.confusion = MulticlassConfusionMatrix(pl_module.hparams.num_classes, validate_args=False)

    def _start(self, pl_module: LightningModule) -> None:
        if self.confusion is not None:
            self.confusion = self.confusion.to(pl_module.device)
            self.confusion.reset()
        self.kept = []

    def _collect(self, outputs: Any, batch: Any) -> None:
        if self.confusion is None or not isinstance(outputs, dict) or "preds" not in outputs:
            return
        images, labels, preds = batch[0], batch[1], outputs["preds"]
        confidence = outputs.get("confidence", torch.full(preds.shape, float("nan"), device=preds.device))
        self.confusion.update(preds, labels)
        if not self.max_images:
            return
        # The batch's own choice first (the same choice as from everything at once), so few images are copied.
        batch = [images.detach(), labels, preds, confidence.detach().float()]
        batch = [tensor[most_telling_mistakes(*batch[1:], self.max_images)] for tensor in batch]
        if self.kept:
            batch = [torch.cat(pair) for pair in zip(self.kept, batch, strict=True)]
        self.kept = [tensor[most_telling_mistakes(*batch[1:], self.max_images)] for tensor in batch]

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.confusion is None or trainer.sanity_checking:
            return
        from loggers.plots import confusion_figure, labelled_images_figure  # matplotlib, only once there is a figure

        names = getattr(trainer.datamodule, "class_names", None) or [str(i) for i in range(self.confusion.num_classes)]
        names = [shown_name(name) for name in names]
        matrix = self.confusion.compute()  # over all DDP ranks
        where = "validation" if stage == "val" else "test"
        for normalized, suffix, what in ((False, "", "images"), (True, "_normalized", "share of each true class")):
            title = f"Confusion matrix, {where} at step {trainer.global_step} ({what})"
            log_figure(trainer, f"{stage}/confusion_matrix{suffix}", confusion_figure(matrix, names, title, normalized))
        if self.kept:
            images, labels, preds, confidence = (tensor.cpu() for tensor in self.kept)
            wrong = preds != labels
            if wrong.any():
                mistakes = list(
                    zip(labels[wrong].tolist(), preds[wrong].tolist(), confidence[wrong].tolist(), strict=True)
                )
                total = int(matrix.sum() - matrix.trace())
                caption = (
                    f"{len(mistakes)} of the {total:,} mistakes in {where} at step {trainer.global_step}: "
                    "the most confident of each true class in turn"
                )
                titles = [f"{names[true]} → {names[pred]}\n{shown(p)}" for true, pred, p in mistakes]
                figure = labelled_images_figure(images[wrong], titles, title=caption)
                log_figure(trainer, f"{stage}/misclassified", figure)
                rows = [
                    f"| {i} | {names[true]} | {names[pred]} | {shown(p)} |"
                    for i, (true, pred, p) in enumerate(mistakes, 1)
                ]
                table = (
                    f"{caption}\n\n| image | true class | predicted class | confidence |\n| --- | --- | --- | --- |\n"
                    + "\n".join(rows)
                )
                log_text(trainer, f"{stage}/misclassified", table)
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


def shown(probability: float) -> str:
    """A predicted class's probability as a percentage ("?" when the model gave none)."""
    return "?" if probability != probability else f"{probability:.0%}"  # NaN is not equal to itself


def most_telling_mistakes(labels: Tensor, preds: Tensor, confidence: Tensor, count: int) -> Tensor:
    """The indices of ``count`` predictions (fewer if there are fewer), the mistakes first: the most confident
    mistake of each true class, the most confident of those first, then the second most confident of each class,
    and so on; right predictions come last.

    Choosing from a part of the predictions, then from those chosen and the rest, chooses as from all at once.
    Of fixed size and computed on the device: nothing waits for it. A mistake without a confidence (NaN) counts as 0.
    """
    wrong = preds != labels
    score = torch.where(wrong, confidence.nan_to_num(0.0), -1.0)  # a right prediction: after the mistakes
    by_score = torch.sort(score, descending=True, stable=True).indices
    grouped = by_score[torch.sort(labels[by_score], stable=True).indices]  # by class, the most confident first
    classes = labels[grouped].contiguous()
    rank = torch.empty_like(grouped)  # of each prediction within its true class
    rank[grouped] = torch.arange(len(labels), device=labels.device) - torch.searchsorted(classes, classes)
    key = torch.where(wrong, 2 * rank + 1 - score, float("inf"))  # 1 - score lies in [0, 1]: the rank comes first
    return torch.sort(key, stable=True).indices[:count]
