"""Stop training, with a clear message, when the training loss turns NaN or infinite."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message says where and what to try."""


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`NonFiniteLossError` when a training loss is NaN or infinite, before a checkpoint is written.

    The step losses stay on the device and are checked together every ``log_every_n_steps`` steps
    (when Lightning waits for the device to log anyway), before each validation, at the end of each
    training epoch, and before every checkpoint is written (also those written within epochs), so the
    checkpoints on disk all come from before the loss broke.
    """

    def __init__(self) -> None:
        self._losses: list[tuple[int, int, int, Tensor]] = []  # (epoch, global step, batch index, loss)
        self._step = 0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._step = trainer.global_step  # at batch end it has moved on when the optimizer stepped

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self._losses.append((trainer.current_epoch, self._step, batch_idx, loss.detach()))
        if len(self._losses) >= max(1, trainer.log_every_n_steps):
            self.check(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self.check(trainer)

    def check(self, trainer: Trainer) -> None:
        """Raise :class:`NonFiniteLossError` if a loss collected since the last check is not finite."""
        if not self._losses:
            return
        entries, self._losses = self._losses, []
        losses = torch.stack([loss for *_, loss in entries]).float().cpu()  # the one wait for the device
        broken = (~torch.isfinite(losses)).nonzero()
        if len(broken) == 0:
            return
        first = int(broken[0])
        epoch, step, batch_idx, _ = entries[first]
        kept = trainer.checkpoint_callback.last_model_path or trainer.checkpoint_callback.best_model_path
        raise NonFiniteLossError(
            f"the training loss became {float(losses[first])} at epoch {epoch}, step {step} (batch {batch_idx} "
            f"of the epoch); training stopped, last good checkpoint: {kept or 'none (none was written yet)'}. "
            "Lower --model.lr, clip the gradients with --gradient_clip_val 1.0, or find the operation that "
            "made it with --detect_anomaly true"
        )
