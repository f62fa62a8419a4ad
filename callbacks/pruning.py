"""Optuna's pruning for scripts/search.py: a trial reports its metric after each validation and stops when pruned."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch import Callback, LightningModule, Trainer

if TYPE_CHECKING:  # Optuna is imported by the search command alone
    import optuna
    from optuna_integration import TorchDistributedTrial


class PruneTrial(Callback):
    """Report the metric to the trial after each validation, and stop training when Optuna prunes the trial.

    optuna_integration's PyTorchLightningPruningCallback needs an Optuna trial of its own in every
    DDP process; here the processes share one (a ``TorchDistributedTrial``), so they report and
    stop together. ``pruned_at`` is the epoch after which the trial was pruned, if it was.
    """

    def __init__(self, trial: optuna.Trial | TorchDistributedTrial, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            raise ValueError(f"the search space's metric {self.monitor} is not logged: give one such as val/acc")
        self.trial.report(float(trainer.callback_metrics[self.monitor]), step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True
