"""What a run prints for its user: what it runs on, the summary at the end, and where an interrupt left it."""

import os
import shlex
import sys
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks import RunInterrupted, SaveTestMetrics
from callbacks.class_report import SHOWN_CLASSES
from cli.calibration import Calibration, calibration_line
from cli.run_folders import discard_failed_run, relative


def describe_run(trainer: Trainer, seed: int | None = None, resumed: str | None = None) -> str:
    """One line of what the run uses: device, processes, precision, seed (for Lightning's lines about GPUs and TPUs
    and its "Seed set to"), and the checkpoint it resumes (for Lightning's "Restoring states")."""
    # No GPU name: asking CUDA for it here would break the strategies that fork the processes later (ddp_fork).
    device = trainer.strategy.root_device.type
    where = f"{trainer.num_devices} x {device}" if trainer.num_devices > 1 else device
    processes = f"{trainer.world_size} process{'es' if trainer.world_size > 1 else ''}"
    if trainer.num_nodes > 1:
        processes += f" on {trainer.num_nodes} machines"
    line = f"Running on {where}, {processes}, precision {trainer.precision}"
    if isinstance(seed, int) and not isinstance(seed, bool):  # --seed_everything false: none
        line += f", seed {seed}"
    return f"{line}, resuming {relative(resumed)}" if resumed else line


def print_summary(
    trainer: Trainer,
    run_dir: str,
    best_checkpoint: str,
    tested: str | None = None,
    calibration: Calibration | None = None,
) -> None:
    """The run's test accuracy and where its logs, checkpoint (or ``tested``, when none was best) and metrics are;
    with a ``calibration``, the test ECE before and after it, and the calibrated checkpoint."""
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
    saver = next(callback for callback in trainer.callbacks if isinstance(callback, SaveTestMetrics))
    shown = {name: value for name, value in metrics.items() if name != "test/acc" and "/class_acc/" not in name}
    others = ", ".join(f"{name} {value:.4f}" for name, value in shown.items())
    print(f"\nTest accuracy:   {metrics['test/acc']:.2%} ({others})")
    undefined = {
        k: v for k, v in getattr(trainer.lightning_module, "undefined_metrics", {}).items() if k.startswith("test/")
    }
    if undefined:
        print(f"Not defined:     {'; '.join(f'{name} ({why})' for name, why in undefined.items())}")
    print_class_report(saver)
    print(f"Run folder:      {relative(run_dir)}")
    if best_checkpoint:
        print(f"Best checkpoint: {relative(best_checkpoint)}")
    elif tested:
        print(f"Best checkpoint: none (no validation part, nothing chosen); tested {relative(tested)}")
    else:
        print("Best checkpoint: none (the final weights were tested)")
    if calibration is not None:
        print(f"Calibration:     {calibration_line(calibration)}, fitted on the validation split")
        print(f"Calibrated:      {relative(calibration.path)} (tested)")
    if saver.path is not None:
        print(f"Test metrics:    {relative(saver.path)}")
    if saver.report_path is not None:
        print(f"Class report:    {relative(saver.report_path)}")
    if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
        print(f"TensorBoard:     tensorboard --logdir {relative(Path(run_dir).parent)}")


def print_class_report(saver: SaveTestMetrics) -> None:
    """The test's most confused pairs of classes, and its per-class report where there are at most 20 classes."""
    if saver.report is None:
        return
    print(f"Most confused:   {'; '.join(saver.most_confused) or 'none (no mistake)'}")
    if saver.confusion.num_classes <= SHOWN_CLASSES:
        print(f"\n{saver.report[0]}")


def report_interrupted(stop: RunInterrupted, trainer: Trainer, args: list[str]) -> int:
    """Say that the run was interrupted, where its last.ckpt is and the command that resumes it; returns 130."""
    if not trainer.is_global_zero:
        return 130
    where = f"interrupted at epoch {stop.epoch}, step {stop.step}"
    if not stop.checkpoint:
        print(f"{where}: no last.ckpt to resume from (--trainer.enable_checkpointing false)", file=sys.stderr)
        return 130
    saved = "written at this step" if stop.saved_now else "of the last epoch"
    command = resume_command(trainer, args)
    print(f"{where}: last.ckpt {saved}: {relative(stop.checkpoint)}; resume with: {command}", file=sys.stderr)
    return 130


def resume_command(trainer: Trainer, args: list[str]) -> str:
    """The command that resumes the run of ``trainer``, started with the options ``args``, from its last.ckpt."""
    # Not --init_weights: the resumed checkpoint holds the weights, and the two options are not given together.
    left_out = {"--ckpt_path", "--init_weights"}
    previous = ["", *args[:-1]]
    kept = [arg for arg, before in zip(args, previous, strict=True) if not {arg.split("=")[0], before} & left_out]
    return shlex.join([*command_name(), *kept, "--ckpt_path", relative(trainer.log_dir)])


def where_to_resume(trainer: Trainer, args: list[str]) -> str:
    """For a run stopped at once by a second Ctrl-C: its last.ckpt and the command that resumes it, or that it has
    none yet (the end of a line)."""
    checkpoint = trainer.checkpoint_callback
    last = os.path.join(checkpoint.dirpath, "last.ckpt") if checkpoint and checkpoint.dirpath else ""
    if not last or not os.path.isfile(last):
        return ": no last.ckpt written yet, nothing to resume"
    return f": last.ckpt as last saved: {relative(last)}; resume with: {resume_command(trainer, args)}"


def command_name() -> list[str]:
    """How the user started this command: ``python scripts/fit.py``, or ``lic-fit`` where it was installed."""
    started = sys.argv[0]
    return ["python", started] if started.endswith(".py") else [Path(started).name]


def report_interrupted_outside_training(trainer: Trainer | None) -> int:
    """Say that Ctrl-C stopped the run before its first training step (its folder goes) or after; returns 130."""
    if trainer is None or trainer.global_step == 0:
        if trainer is not None:
            discard_failed_run(trainer)
        print("interrupted before the first training step: nothing to resume", file=sys.stderr)
    elif trainer.is_global_zero:
        where = f"interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}, outside the training steps"
        print(f"{where}: the run's checkpoints are in {relative(trainer.log_dir)}/checkpoints", file=sys.stderr)
    return 130
