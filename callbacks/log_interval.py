"""A training-loss curve for every run, however few steps its epochs have."""

import math

from lightning.pytorch import Callback, LightningModule, Trainer


class StepLogInterval(Callback):
    """Where an epoch has fewer training steps than ``--trainer.log_every_n_steps`` (50 by default), log about
    ``points`` times an epoch instead.

    With Lightning's interval alone, a run on a small dataset (10 steps an epoch) logged no step at all:
    no ``train/loss_step`` curve, and Lightning's warning that "the number of training batches is
    smaller than the logging interval" in every log.

    Args:
        points: Steps logged per epoch where the epoch is shorter than the interval.
    """

    def __init__(self, points: int = 10) -> None:
        self.points = points

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        steps = trainer.num_training_batches
        if steps != float("inf") and trainer.log_every_n_steps > steps:
            trainer.log_every_n_steps = max(1, math.ceil(steps / self.points))
