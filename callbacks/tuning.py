"""Lightning's learning-rate and batch-size finders (its Tuner, as callbacks), fitted to this project's schedules."""

from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder
from lightning.pytorch.utilities import rank_zero_info


class LRFinder(LearningRateFinder):
    """Lightning's ``LearningRateFinder``: before training, sweep the learning rate over a few steps and
    train with the suggested one; also save the loss-versus-rate plot as ``lr_find.png`` in the run folder.

    The optimizer and schedule are built again afterwards: the one-cycle and cosine schedules keep
    the learning rate they were made with, so Lightning's update of the optimizer alone would be lost.

    Args:
        filename: Name of the plot, in the run folder (the logger's version folder).
        **kwargs: Options of Lightning's ``LearningRateFinder`` (``min_lr``, ``max_lr``, ``num_training_steps``,
            ``mode``, ``early_stop_threshold``).
    """

    def __init__(self, filename: str = "lr_find.png", **kwargs) -> None:
        super().__init__(**kwargs)
        self.filename = filename
        self.plot_path: Path | None = None

    def lr_find(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().lr_find(trainer, pl_module)
        trainer.strategy.setup_optimizers(trainer)
        if self.optimal_lr is None or not trainer.is_global_zero or trainer.log_dir is None:
            return
        import matplotlib.pyplot as plt  # only when a plot is made: matplotlib takes a second to import

        self.plot_path = Path(trainer.log_dir) / self.filename
        self.plot_path.parent.mkdir(parents=True, exist_ok=True)
        figure = self.optimal_lr.plot(suggest=True)
        figure.savefig(self.plot_path)
        plt.close(figure)
        rank_zero_info(f"Learning-rate finder: suggested lr {self.optimal_lr.suggestion()}; plot: {self.plot_path}")


class BatchSizeTuner(BatchSizeFinder):
    """Lightning's ``BatchSizeFinder``: before training, grow the batch size from ``init_val`` until a
    step fails for want of memory (or ``max_trials`` or ``max_val`` is reached), and train with the largest
    that worked. Its options are Lightning's (``mode``, ``init_val``, ``max_trials``, ``max_val``, ``steps_per_trial``).

    The optimizer and schedule are built again afterwards, so that the schedules that count steps
    (one-cycle, cosine) count those of the new batch size.
    """

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)
        trainer.strategy.setup_optimizers(trainer)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Nothing: the test after training keeps the batch size found for it, without a second search."""
