"""A rich progress bar that costs the training loop next to nothing."""

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar


class ThrottledRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, redrawn at most every ``min_interval`` seconds while training.

    Lightning's own redraws the bar and gathers the logged metrics after every training batch, which
    took about a tenth of the step time of the MNIST MLP on a 2-core CPU; here the first and last
    batches of an epoch are always shown, the ones between at most ``1 / min_interval`` times a second.

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
