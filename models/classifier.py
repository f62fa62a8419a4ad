"""The classifier logic every model shares: loss, optimizer, learning-rate schedule, metrics."""

from typing import Any, Literal

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
SchedulerName = Literal["none", "step", "cosine", "onecycle", "plateau"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


STAGES = ("train", "val", "test")


def stage_metrics(num_classes: int, stage: str) -> MetricCollection:
    """``<stage>/acc`` (accuracy); for val and test also ``<stage>/f1`` (macro F1) and ``<stage>/auroc`` (macro AUROC).

    Training keeps to accuracy without argument checks: F1 and AUROC would add about half a
    millisecond to every step (AUROC keeps every prediction of the epoch), and each check waits for
    the GPU, while a training-set F1 or AUROC says little that its accuracy does not.
    """
    if stage == "train":
        return MetricCollection(
            {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}, prefix="train/"
        )
    metrics: dict[str, Metric] = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
        "auroc": MulticlassAUROC(num_classes),
    }
    return MetricCollection(metrics, prefix=f"{stage}/")


class ImageClassifier(LightningModule):
    """Base class of every model: subclass it, build layers in ``__init__``, return logits from ``forward``.

    ``num_classes`` and ``input_shape`` (channels, height, width) come from the datamodule; the CLI
    links them, so a subclass only passes them on. Everything else here is an option of every model.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: Shape of one input image as (channels, height, width) (from the datamodule).
        optimizer: Optimizer: sgd (with ``momentum`` and ``nesterov``), adam, adamw, rmsprop or adagrad.
        lr: Learning rate; the peak rate for the onecycle schedule.
        weight_decay: L2 penalty (decoupled for adamw).
        momentum: Momentum for sgd and rmsprop.
        nesterov: Nesterov momentum for sgd.
        scheduler: Learning-rate schedule: none; step (times ``gamma`` every ``step_size`` epochs);
            cosine (to zero over the run, per step); onecycle (warm-up then annealing, per step);
            plateau (times ``gamma`` when val/acc stalls for ``patience`` epochs).
        step_size: Epochs between decays of the step schedule.
        gamma: Decay factor of the step and plateau schedules.
        patience: Epochs without val/acc improvement before the plateau schedule decays.
        label_smoothing: Label smoothing of the cross-entropy loss, in [0, 1).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        optimizer: OptimizerName = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = True,
        scheduler: SchedulerName = "onecycle",
        step_size: int = 10,
        gamma: float = 0.1,
        patience: int = 3,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {tuple(input_shape)}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not 0 < lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        # Collects the init arguments of the subclass too, so MyModel.load_from_checkpoint(path) just works.
        self.save_hyperparameters()
        self.example_input_array = torch.zeros(2, *input_shape)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        for stage in STAGES:  # train_metrics, val_metrics, test_metrics; train_loss, val_loss, test_loss
            setattr(self, f"{stage}_metrics", stage_metrics(num_classes, stage))
            # nan_strategy="disable": checking each loss for NaN would wait for the GPU on every step.
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))

    def model_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Forward one batch; returns the loss, the class probabilities and the targets."""
        x, y = batch
        if x.dtype == torch.uint8:
            raise TypeError(
                "the model got raw uint8 images: the datamodule normalizes batches in on_after_batch_transfer, "
                "so pass it to the Trainer, as in trainer.fit(model, datamodule=dm)"
            )
        logits = self(x)
        return self.criterion(logits, y), logits.softmax(dim=-1), y

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        loss, probs, y = self.model_step(batch)
        # One value per sample, not (loss, weight=len(y)): torchmetrics ignores weights under nan_strategy="disable".
        getattr(self, f"{stage}_loss").update(loss.detach().expand(len(y)))
        getattr(self, f"{stage}_metrics").update(probs.detach(), y)
        return loss

    def _log_epoch(self, stage: str) -> None:
        # Logged as torchmetrics objects: Lightning computes them (summed over DDP ranks) and resets them.
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), prog_bar=True)
        self.log_dict(getattr(self, f"{stage}_metrics"), prog_bar=stage != "train")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        # A step's loss only where Lightning writes the logs: each self.log call costs about a millisecond,
        # and the progress bar would wait for the GPU on every step to show it.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss_step", loss.detach())
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Class probabilities for a batch of images, or of (images, labels) pairs."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(dim=-1)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        kwargs: dict[str, Any] = {"lr": hp.lr, "weight_decay": hp.weight_decay}
        if hp.optimizer == "sgd":
            kwargs.update(momentum=hp.momentum, nesterov=hp.nesterov and hp.momentum > 0)
        elif hp.optimizer == "rmsprop":
            kwargs.update(momentum=hp.momentum)
        optimizer = OPTIMIZERS[hp.optimizer](self.parameters(), **kwargs)
        if hp.scheduler == "none":
            return {"optimizer": optimizer}
        if hp.scheduler == "step":
            scheduler = {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, hp.step_size, hp.gamma)}
        elif hp.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=hp.gamma, patience=hp.patience
            )
            scheduler = {"scheduler": plateau, "monitor": "val/acc"}
        else:
            total_steps = self.trainer.estimated_stepping_batches
            if total_steps == float("inf"):
                raise MisconfigurationException(
                    f"the {hp.scheduler} schedule needs a finite --max_epochs or --trainer.max_steps"
                )
            if hp.scheduler == "cosine":
                per_step = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(total_steps))
            else:
                per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=int(total_steps))
            scheduler = {"scheduler": per_step, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
