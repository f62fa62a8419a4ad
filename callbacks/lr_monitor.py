"""The learning rate under one name, ``train/lr``, whatever the optimizer."""

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor


class TrainLRMonitor(LearningRateMonitor):
    """Lightning's LearningRateMonitor, logging the rate of a run's single optimizer as ``train/lr``.

    Lightning names it after the optimizer's class (``lr-AdamW``): runs with different optimizers
    never shared a chart, and its TensorBoard group sorted before the training curves. Parameter
    groups that share one rate (the groups with and without weight decay) give one curve, the first
    group's; with several optimizers, or groups at different rates, Lightning's names stay, as they
    tell them apart. Every option is LearningRateMonitor's (``logging_interval``, ``log_momentum``,
    ``log_weight_decay``).
    """

    def _extract_stats(self, trainer: Trainer, interval: str) -> dict[str, float]:
        stats = super()._extract_stats(trainer, interval)
        if not stats or len(trainer.optimizers) != 1:
            return stats
        if len({group["lr"] for group in trainer.optimizers[0].param_groups}) != 1:
            return stats
        rate = next(iter(stats))  # the first group's rate, then its "<rate>-momentum" and "<rate>-weight_decay"
        first = {name: value for name, value in stats.items() if name == rate or name.startswith(f"{rate}-")}
        return {name.replace(rate, "train/lr", 1): value for name, value in first.items()}
