"""The learning rate under one name, ``train/lr``, whatever the optimizer."""

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import LearningRateMonitor


class TrainLRMonitor(LearningRateMonitor):
    """Lightning's LearningRateMonitor, logging the rate of a run's single optimizer as ``train/lr``.

    Lightning names it after the optimizer's class (``lr-AdamW``): runs with different optimizers
    never shared a chart, and its TensorBoard group sorted before the training curves. With several
    optimizers or parameter groups Lightning's names stay, as they tell them apart. Every option is
    LearningRateMonitor's (``logging_interval``, ``log_momentum``, ``log_weight_decay``).
    """

    def _extract_stats(self, trainer: Trainer, interval: str) -> dict[str, float]:
        stats = super()._extract_stats(trainer, interval)
        if not stats or len(trainer.optimizers) != 1 or len(trainer.optimizers[0].param_groups) != 1:
            return stats
        rate = next(iter(stats))  # the rate comes first, then "<rate>-momentum" and "<rate>-weight_decay"
        return {name.replace(rate, "train/lr", 1): value for name, value in stats.items()}
