"""An exponential moving average of the weights, for validation, checkpoints, the final test and all after.

A Lightning callback, but the one that ``--model.ema_decay`` makes the model add itself (its
``configure_callbacks``): it lives beside the models so that they never import the callbacks package.
"""

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (from 1): ``1 - (1 + updates) ** -0.75``, at most ``decay``.

    timm's ModelEmaV3 warm-up (power 3/4): the average follows the fast-changing weights of the
    first steps closely (0.83 after 10 updates, 0.97 after 100) instead of holding on to the random
    initial ones, which a fixed 0.999 still weighs by 37% after 1,000 steps.
    """
    return min(decay, 1 - (1 + updates) ** -0.75)


class EMAWeights(WeightAveraging):
    """Lightning's ``WeightAveraging`` as an exponential moving average with a warm-up, one set of weights everywhere.

    After every optimizer step the average moves towards the weights (and BatchNorm statistics) by
    ``1 - warmed_up_decay(decay, step)``. Validation, and so the choice of the best checkpoint, uses
    the average; checkpoints keep it as their ``state_dict`` (what scripts/test.py, predict.py,
    export.py and quantize.py load) and the live weights apart, for a resumed run to go on exactly.

    Lightning's callback swaps the average in for every validation and, on loading a checkpoint,
    swaps the live weights back in, also when testing or validating a checkpoint after training: the
    final test of a run would then measure other weights than the checkpoint holds. Here both happen
    only while fitting; outside it a checkpoint is used as saved, the average.

    Args:
        decay: The largest decay of the average, reached after the warm-up (0.999: about the last
            thousand steps count).
    """

    def __init__(self, decay: float = 0.999) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the EMA decay must be between 0 and 1, got {decay}")
        super().__init__(multi_avg_fn=self._average)
        self.decay = decay
        self._step = 0

    @torch.no_grad()
    def _average(self, averages: list[Tensor], currents: list[Tensor], num_averaged: Tensor) -> None:
        # The step count comes from the trainer, not num_averaged: reading a GPU tensor would wait for the GPU.
        if torch.is_floating_point(averages[0]):
            torch._foreach_lerp_(averages, currents, 1 - warmed_up_decay(self.decay, self._step))
        else:  # integer buffers (BatchNorm's count of batches) are not averaged
            torch._foreach_copy_(averages, currents)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
