"""Per-step learning-rate schedules with an optional linear warm-up, from PyTorch's own schedulers."""

from typing import Any

from torch.optim import Optimizer
from torch.optim import lr_scheduler as schedulers


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """The warm-up's length in optimizer steps; it must leave at least one step to the schedule after it."""
    steps = round(warmup_epochs * steps_per_epoch)
    if warmup_epochs and not 0 < steps < total_steps:
        raise ValueError(
            f"warmup_epochs {warmup_epochs} is {steps} of the run's {total_steps} optimizer steps: "
            "it must be at least one step and leave some to the schedule"
        )
    return steps


def per_step_schedule(
    optimizer: Optimizer,
    name: str,
    total_steps: int,
    steps_per_epoch: int,
    hparams: Any,
    cycle_momentum: bool,
) -> schedulers.LRScheduler:
    """The schedule ``name`` over ``total_steps`` optimizer steps, after a linear warm-up of ``warmup_epochs``.

    The warm-up rises from ``warmup_start_factor`` times the learning rate to the learning rate, then
    the schedule runs over the remaining steps (as torchvision's reference scripts chain them). For
    onecycle the warm-up is its own rising phase (``pct_start``; 30% of the run without it). The step
    schedule counts ``step_size`` epochs in steps; linear falls from the learning rate to
    ``end_factor`` times it (with the warm-up: Page's and airbench's schedules).
    """
    warmup = warmup_steps(hparams.warmup_epochs, steps_per_epoch, total_steps)
    if name == "onecycle":
        return schedulers.OneCycleLR(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=warmup / total_steps if warmup else 0.3,
            cycle_momentum=cycle_momentum,
        )
    rest = total_steps - warmup
    if name == "cosine":
        main = schedulers.CosineAnnealingLR(optimizer, T_max=rest)
    elif name == "linear":
        main = schedulers.LinearLR(optimizer, start_factor=1.0, end_factor=hparams.end_factor, total_iters=rest)
    elif name == "step":
        main = schedulers.StepLR(optimizer, hparams.step_size * steps_per_epoch, hparams.gamma)
    else:  # none: the learning rate, once warmed up
        main = schedulers.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup:
        return main
    rise = schedulers.LinearLR(optimizer, start_factor=hparams.warmup_start_factor, total_iters=warmup)
    return schedulers.SequentialLR(optimizer, [rise, main], milestones=[warmup])
