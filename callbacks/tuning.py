"""Lightning's learning-rate and batch-size finders (its Tuner, as callbacks), fitted to this project's schedules."""

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BatchSizeFinder, LearningRateFinder
from lightning.pytorch.tuner import lr_finder
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.parsing import lightning_setattr

from loggers.lightning_messages import lightning_messages_dropped

# Lightning's LR finder smooths the losses with an exponential moving average of this factor.
SMOOTHING = 0.98


@contextmanager
def no_tqdm_bar() -> Iterator[None]:
    """Keep Lightning's LR finder from drawing its own tqdm bar, which ran into the rich output.

    The finder makes it unconditionally (Lightning 2.6); the module's name is swapped for the time of the search.
    """
    original = lr_finder.tqdm
    lr_finder.tqdm = partial(original, disable=True)
    try:
        yield
    finally:
        lr_finder.tqdm = original


def unbias_losses(losses: list[float], start_step: int, beta: float = SMOOTHING) -> list[float]:
    """The LR finder's smoothed losses with the right bias correction.

    Lightning divides its moving average after the n-th loss by ``1 - beta ** (global_step + 1)``,
    but the global step has already counted that loss's step: the divisor of a search from step 0 is
    ``1 - beta ** (n + 1)`` instead of ``1 - beta ** n``, which halved the first loss (1.16 for an
    untrained 10-class network whose loss is 2.3) and made the curve climb for the first hundred
    steps, so that the steepest descent came late, at too low a rate. NaN entries (steps skipped by
    the model) neither updated the average nor counted a step.
    """
    corrected, count = [], 0
    for loss in losses:
        if loss == loss:  # not NaN
            count += 1
            loss = loss * (1 - beta ** (start_step + count + 1)) / (1 - beta**count)
        corrected.append(loss)
    return corrected


def steepest_on_log_scale(finder: lr_finder._LRFinder, skip_begin: int = 10, skip_end: int = 1) -> float | None:
    """The rate at which the loss falls fastest per decade of rate; also marks it for the finder's plot.

    Lightning's suggestion takes the slope per unit of rate, which over a sweep of 1e-8 to 1 makes the
    noise among the smallest rates the steepest: with the unbiased curve of the MNIST MLP (flat at 2.3
    up to 1e-4, falling to 1.9 by 5e-3) it suggested 1.3e-7. Per decade, the fall itself is steepest.
    """
    losses, lrs = torch.tensor(finder.results["loss"]), torch.tensor(finder.results["lr"])
    index = torch.arange(len(losses))[skip_begin : len(losses) - skip_end]
    index = index[torch.isfinite(losses[index])]
    if len(index) < 2:
        finder._optimal_idx = None
        return None
    slopes = torch.gradient(losses[index], spacing=[lrs[index].log10()])[0]
    finder._optimal_idx = int(index[slopes.argmin()])
    return finder.results["lr"][finder._optimal_idx]


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
        start_step, initial_lr = trainer.global_step, pl_module.hparams.get("lr")
        # Lightning's messages say how it restores its temporary checkpoint; and its "stopped early due to
        # diverging loss" comes also when the search ran out of batches (see searched_to_the_end).
        dropped = (r"^Learning rate set to", r"^LR finder stopped early", r"^`Trainer.fit` stopped: `max_steps=")
        with no_tqdm_bar(), lightning_messages_dropped(*dropped), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`weights_only` was not set")  # its own checkpoint
            super().lr_find(trainer, pl_module)
        if self.optimal_lr is not None and self.optimal_lr.results.get("loss"):
            results = self.optimal_lr.results
            searched_all = self.searched_to_the_end(results["loss"])  # Lightning's losses, as it decided on them
            results["loss"] = unbias_losses(results["loss"], start_step)
            # On the instance: the finder's plot calls its suggestion() to mark the rate.
            self.optimal_lr.suggestion = partial(steepest_on_log_scale, self.optimal_lr)
            lr = self.optimal_lr.suggestion()
            if not searched_all:
                rank_zero_warn(
                    f"the learning-rate finder ran out of training batches after {len(results['loss'])} of its "
                    f"{self._num_training_steps} steps, below lr {results['lr'][-1]:.3g}: training with the given lr "
                    f"{initial_lr}; give it more epochs (--max_epochs) or fewer steps (num_training_steps)"
                )
                self.optimal_lr = None
                if initial_lr is not None and self._update_attr:
                    self.set_lr(pl_module, initial_lr)
            elif lr is not None and self._update_attr:
                self.set_lr(pl_module, lr)
        trainer.strategy.setup_optimizers(trainer)
        if self.optimal_lr is None or not trainer.is_global_zero or trainer.log_dir is None:
            return
        import matplotlib.pyplot as plt  # only when a plot is made: matplotlib takes a second to import

        self.plot_path = Path(trainer.log_dir) / self.filename
        self.plot_path.parent.mkdir(parents=True, exist_ok=True)
        figure = self.optimal_lr.plot(suggest=True)
        figure.savefig(self.plot_path)
        plt.close(figure)
        lr = self.optimal_lr.suggestion()
        found = f"training with lr {lr:.3g}" if lr is not None else "no suggestion (too few steps)"
        rank_zero_info(f"Learning-rate finder: {found}; plot: {self.plot_path}")

    def searched_to_the_end(self, losses: list[float]) -> bool:
        """Whether the search took all its steps, or stopped because the loss diverged (not for want of batches)."""
        if len(losses) >= self._num_training_steps or self._early_stop_threshold is None:
            return True
        finite = [loss for loss in losses if math.isfinite(loss)]
        return not finite or finite[-1] > self._early_stop_threshold * min(finite)

    def set_lr(self, pl_module: LightningModule, lr: float) -> None:
        """Train with ``lr``, and record it as the run's learning rate in ``hparams.yaml`` too.

        The logger writes ``hparams.yaml`` from the model's initial hyperparameters, which would keep the
        rate the run was started with while the checkpoints and TensorBoard's HPARAMS tab hold this one.
        """
        name = lr_finder._determine_lr_attr_name(pl_module, self._attr_name)
        lightning_setattr(pl_module, name, lr)
        if name in pl_module._hparams_initial:  # read back by Lightning as the hparams to log
            pl_module._hparams_initial[name] = lr


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
