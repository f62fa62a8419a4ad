"""What a resume needs beyond Lightning's checkpoint: the options that made it, and a clean stop on Ctrl-C."""

import os
import signal
import sys
import threading
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.checkpoint import RunCheckpoint

OPTIONS_KEY = "run_options"


class OptionsInCheckpoint(Callback):
    """Stores the run's options (``options``: model, data and schedule, as scripts/fit.py resolved them)
    in every checkpoint under ``run_options``, so a resume can refuse options that do not match."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.options:
            checkpoint[OPTIONS_KEY] = self.options


class RunInterrupted(Exception):
    """The user stopped training with Ctrl-C; ``checkpoint`` is the run's ``last.ckpt`` ("" when none)."""

    def __init__(self, epoch: int, step: int, checkpoint: str, saved_now: bool) -> None:
        super().__init__(f"interrupted at epoch {epoch}, step {step}")
        self.epoch, self.step, self.checkpoint, self.saved_now = epoch, step, checkpoint, saved_now


class StopOnInterrupt(Callback):
    """The first Ctrl-C during training stops the run at the end of the current training step, with
    ``last.ckpt`` written at that step (exactly resumable, as the periodic checkpoints within epochs are),
    and raises ``RunInterrupted``; during validation it stops at the end of the batch, keeping the
    ``last.ckpt`` of before. A second Ctrl-C ends the process at once (exit code 130).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            print("\ninterrupted again: stopped at once", file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        print("\nCtrl-C: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def _stop_now(self, trainer: Trainer) -> bool:
        # Under DDP every rank must stop at the same step: rank 0's signal decides.
        return trainer.strategy.broadcast(self.requested) if trainer.world_size > 1 else self.requested

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._stop_now(trainer):
            return
        checkpoint = trainer.checkpoint_callback
        saved_now = isinstance(checkpoint, RunCheckpoint) and bool(checkpoint.save_last)
        if saved_now:
            checkpoint._save_last(trainer)
        self._raise(trainer, saved_now)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if trainer.state.fn == "fit" and self._stop_now(trainer):
            self._raise(trainer, saved_now=False)

    def _raise(self, trainer: Trainer, saved_now: bool) -> None:
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") if checkpoint is not None else ""
        raise RunInterrupted(trainer.current_epoch, trainer.global_step, last or "", saved_now)
