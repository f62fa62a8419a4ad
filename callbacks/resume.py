"""What a resume needs beyond Lightning's checkpoint: the options that made it, and a clean stop on Ctrl-C."""

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.checkpoint import RunCheckpoint

OPTIONS_KEY = "run_options"
PRECISION_KEY = "precision"


class OptionsInCheckpoint(Callback):
    """Stores the run's options (``options``: model, data and schedule, as scripts/fit.py resolved them)
    in every checkpoint under ``run_options``, so a resume can refuse options that do not match; and the
    Trainer's precision under ``precision``, for test.py and predict.py to compute as training did."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.options:
            checkpoint[OPTIONS_KEY] = self.options
        checkpoint[PRECISION_KEY] = str(trainer.precision)


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

    Runs of one process only: the processes of a DDP run would have to agree on the step to stop at,
    at the cost of a collective call every step; they stop as Lightning stops them.

    Attributes:
        where_to_resume: Called on the second Ctrl-C for the end of its line: where the run can be resumed from
            (scripts/fit.py names the last ``last.ckpt`` written and the command that resumes it).
    """

    def __init__(self) -> None:
        self.where_to_resume: Callable[[], str] = lambda: ""
        self.requested = False
        self._training = False
        self._pid = os.getpid()
        self._previous: Any = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Before any DataLoader worker starts: the workers forked later inherit the handler, and ignore Ctrl-C.
        if stage == "fit" and trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training = True
        # Last among the callbacks, so that the checkpoint of the interrupted step holds what the others did at
        # its end (the weight average's update), as a periodic checkpoint (Lightning puts those last) does.
        trainer.callbacks = [callback for callback in trainer.callbacks if callback is not self] + [self]

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._training = False
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._pid:
            return  # a DataLoader worker: the training process decides
        if not self._training:
            raise KeyboardInterrupt  # before training: stop at once, as Python does
        if self.requested:
            print(f"\ninterrupted again: stopped at once{self.where_to_resume()}", file=sys.stderr, flush=True)
            os._exit(130)
        self.requested = True
        print("\nCtrl-C: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.requested:
            return
        checkpoint = trainer.checkpoint_callback
        saved_now = isinstance(checkpoint, RunCheckpoint) and bool(checkpoint.save_last)
        if saved_now:
            checkpoint._save_last(trainer)
        self._raise(trainer, saved_now)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if self.requested and trainer.state.fn == "fit":
            self._raise(trainer, saved_now=False)

    def _raise(self, trainer: Trainer, saved_now: bool) -> None:
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") if checkpoint is not None else ""
        raise RunInterrupted(trainer.current_epoch, trainer.global_step, last or "", saved_now)
