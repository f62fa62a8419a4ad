"""Training progress as plain lines, for output that is not a terminal: a file, a pipe, a cluster or CI log."""

import sys
import time
from datetime import timedelta
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar

from callbacks.progress import epoch_train_loss


def duration(seconds: float) -> str:
    """``seconds`` as H:MM:SS."""
    return str(timedelta(seconds=round(seconds)))


class ProgressLog(ProgressBar):
    """One line per training epoch, and one every ``interval`` seconds within a long epoch, without colours.

    A rich progress bar redraws itself in place, which a log file cannot show: a log took nothing but
    the last epoch's bar at the very end. Each line here is printed once, whole, and flushed:

    ``Epoch 3/9  469 steps  0:00:12  ETA 0:01:24  4,980 samples/s  train/loss 0.0886  val/loss 0.0912  val/acc 0.9730``

    (epochs and steps counted from 0 to the last, as in the terminal's bar and the checkpoint names;
    the steps the epoch ran; the time of the epoch, validation included; the estimated time left for the whole
    training). After a resume in the middle of an epoch, times and speeds count from the resume.

    Args:
        interval: Seconds between two lines within an epoch (the epoch's progress, its estimated time
            left and the mean training loss so far); the line at the end of each epoch comes anyway.
    """

    def __init__(self, interval: float = 120.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._fit_start = self._epoch_start = self._last_line = 0.0
        self._samples = 0
        self._epochs_done = 0.0
        self._first_batch: int | None = None  # the batches of the epoch before its timing started (a resume)
        self._batches = 0  # of the epoch, run so far
        self._validated = False
        self._pending: str | None = None  # the finished epoch's line, printed once its train/loss is logged

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.trainer.is_global_zero

    def print(self, line: str) -> None:
        """Write ``line`` to standard output at once (a pipe would otherwise hold it back in its buffer)."""
        print(line, file=sys.stdout, flush=True)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_start = time.monotonic()
        self._epochs_done = 0.0
        self._start_epoch()  # a resume in the middle of an epoch calls no on_train_epoch_start

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)
        self._start_epoch()

    def _start_epoch(self) -> None:
        self._epoch_start = self._last_line = time.monotonic()
        self._samples = self._batches = 0
        self._first_batch = None
        self._validated = False

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._samples += len(batch[0]) if isinstance(batch, (list, tuple)) else len(batch)
        self._batches = done = batch_idx + 1
        if self._first_batch is None:
            self._first_batch = batch_idx
        now, total = time.monotonic(), self.total_train_batches
        if not self.is_enabled or now - self._last_line < self.interval or done >= total:  # the last: the epoch's line
            return
        self._last_line = now
        elapsed = now - self._epoch_start
        parts = [self._epoch(trainer), f"{done}/{total} steps", duration(elapsed)]
        if total != float("inf"):
            parts.append(f"epoch ETA {duration(elapsed / (done - self._first_batch) * (total - done))}")
        parts.append(self._speed(trainer, elapsed))
        loss = epoch_train_loss(pl_module)
        if loss is not None:
            parts.append(f"train/loss {loss:.4f} (so far)")
        self.print("  ".join(parts))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._validated = self._validated or (trainer.state.fn == "fit" and not trainer.sanity_checking)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The model logs this epoch's train/loss after the callbacks' hook: the line waits for the next hook.
        now = time.monotonic()
        elapsed = now - self._epoch_start
        total = self.total_train_batches
        run = self._batches - (self._first_batch or 0)  # the part of an epoch resumed in its middle
        self._epochs_done += run / total if total != float("inf") and run else 1
        left = self._epochs_left(trainer)
        parts = [self._epoch(trainer), f"{self._batches} steps", duration(elapsed)]
        if left is not None:
            parts.append(f"ETA {duration((now - self._fit_start) / self._epochs_done * left)}")
        parts.append(self._speed(trainer, elapsed))
        self._pending = "  ".join(parts)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._flush(trainer)

    def _flush(self, trainer: Trainer) -> None:
        """Print the finished epoch's line, with its training loss and, if it validated, its validation metrics."""
        if self._pending is None:
            return
        line, self._pending = self._pending, None
        if not self.is_enabled:
            return
        metrics = self.get_metrics(trainer, trainer.lightning_module)
        shown = [(name, value) for name, value in metrics.items() if name.startswith("train/")]
        if self._validated:
            shown += [(name, value) for name, value in metrics.items() if name.startswith("val/")]
        values = "  ".join(f"{name} {float(value):.4f}" for name, value in shown)
        self.print(f"{line}  {values}".rstrip())

    def _epoch(self, trainer: Trainer) -> str:
        last = f"/{trainer.max_epochs - 1}" if trainer.max_epochs not in (None, -1) else ""
        return f"Epoch {trainer.current_epoch}{last}"

    def _epochs_left(self, trainer: Trainer) -> int | None:
        if trainer.max_epochs in (None, -1):
            return None
        return trainer.max_epochs - trainer.current_epoch - 1

    def _speed(self, trainer: Trainer, elapsed: float) -> str:
        return f"{self._samples * trainer.world_size / max(elapsed, 1e-9):,.0f} samples/s"
