"""Checkpoints that survive a crash: a current ``last.ckpt``, and periodic saves within long epochs.

The files themselves are written whole by :class:`loggers.AtomicCheckpointIO`.
"""

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps ``last.ckpt`` current, and saves it within epochs when asked.

    - ``last.ckpt`` is rewritten at the end of every epoch (Lightning 2.6 rewrites it only when a
      top-k checkpoint is saved, so it fell behind when the monitored metric did not improve).
    - ``every_n_train_steps`` and ``train_time_interval`` rewrite only ``last.ckpt``, in the middle of
      epochs, for runs with long epochs; the best checkpoints are judged on validation results only,
      never on the stale ones of a past validation.

    Every option is ModelCheckpoint's; ``every_n_epochs`` stays 1 unless given.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kwargs.get("every_n_epochs") is None:
            self._every_n_epochs = 1  # ModelCheckpoint sets 0 when steps or a time interval are given

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        if self._train_time_interval is not None:
            now = time.monotonic()
            elapsed = now - (self._last_time_checked or now)
            # Ranks' clocks differ: rank 0 decides, or one rank would wait for the others forever.
            if trainer.strategy.broadcast(elapsed >= self._train_time_interval.total_seconds()):
                self._last_time_checked, due = now, True
        if due:
            saved_before = self._last_global_step_saved
            self._save_last(trainer)
            # Validation may end at this very step: its top-k judgement must not be skipped as "saved already".
            self._last_global_step_saved = saved_before

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last(trainer)

    def _save_last(self, trainer: Trainer) -> None:
        """Rewrite ``last.ckpt`` unless this step's state is saved already."""
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
