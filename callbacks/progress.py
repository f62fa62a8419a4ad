"""A rich progress bar that costs the training loop next to nothing, and shows the loss of the epoch so far."""

import math
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from torchmetrics import MeanMetric


def epoch_train_loss(pl_module: LightningModule) -> float | None:
    """The mean training loss of the current epoch so far, on this process (None before the first step).

    Read from the model's ``train_loss`` MeanMetric without computing it, since ``compute`` would
    wait for the other processes under DDP, where only rank 0 shows progress.
    """
    metric = getattr(pl_module, "train_loss", None)
    if not isinstance(metric, MeanMetric):
        return None
    value = (metric.mean_value / metric.weight).item()
    return None if math.isnan(value) else value


def progress_metrics(metrics: dict[str, Any], pl_module: LightningModule) -> dict[str, Any]:
    """``metrics`` as shown to the user: the training loss of the epoch so far in place of the last epoch's, no v_num.

    The epoch's ``train/loss`` is logged only when the epoch ends, so without this the first epoch shows
    no loss at all, and every later one the loss of the epoch before.
    """
    shown = {name: value for name, value in metrics.items() if name != "v_num"}
    loss = epoch_train_loss(pl_module)
    if loss is not None and pl_module.trainer.state.fn == "fit":
        shown["train/loss"] = loss
    return shown


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, redrawn at most every ``min_interval`` seconds while training.

    Lightning's own redraws the bar and gathers the logged metrics after every training batch, which
    took about a tenth of the step time of the MNIST MLP on a 2-core CPU; here the first and last
    batches of an epoch are always shown, the ones between at most ``1 / min_interval`` times a second.
    The bar shows the mean training loss of the epoch so far. Where the output is not a terminal (a
    file, a pipe), scripts/fit.py puts :class:`callbacks.ProgressLog`'s plain lines in its place.

    Args:
        min_interval: Least time in seconds between two redraws during a training epoch.
        **kwargs: Options of Lightning's ``RichProgressBar`` (``leave``, ``theme``, ``console_kwargs``).
    """

    def __init__(self, min_interval: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval
        self._last_draw = -float("inf")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.monotonic()
        edge = batch_idx == 0 or batch_idx + 1 == self.total_train_batches
        if edge or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        return progress_metrics(super().get_metrics(trainer, pl_module), pl_module)
