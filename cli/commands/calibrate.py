"""Fit a checkpoint's temperature on its run's validation split (temperature scaling, Guo et al. 2017) and write a
calibrated copy of the checkpoint beside it; the original stays as it was.

One number T > 0 divides the model's logits, so that its probabilities match how often it is right:
of the images predicted with 90% confidence, about 90% right. It changes no prediction's class, and so
no accuracy. test.py, predict.py, export.py and quantize.py use the T a checkpoint holds. Printed: T,
and the accuracy, negative log-likelihood and expected calibration error (ECE) of the validation and
test splits before and after it (the test split is only measured).

Examples:
    python scripts/calibrate.py lightning_logs/digits-cnn-1          # its best checkpoint (else last.ckpt)
    python scripts/calibrate.py lightning_logs/mnist-mlp-1/checkpoints/last.ckpt --data.data_dir ../shared/data
"""

from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer

from cli.calibration import calibrate_checkpoint, calibration_table
from cli.exits import run_command
from cli.run_folders import relative
from cli.trained import add_data_arguments, checkpoint_path, data_from, load_checkpoint


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument(
        "path",
        type=str,
        help="A run folder of scripts/fit.py (its best checkpoint, else its last.ckpt) or a .ckpt file.",
    )
    add_data_arguments(parser)
    parser.add_argument("--accelerator", type=str, default="auto", help="cpu, gpu or auto (a GPU when there is one).")
    return parser


def positional(args: list[str]) -> str | None:
    """The first argument that is neither an option nor an option's value (every option here takes one)."""
    previous = ""
    for arg in args:
        if not arg.startswith("-") and (not previous.startswith("-") or "=" in previous):
            return arg
        previous = arg
    return None


def calibrate(args: list[str]) -> None:
    """Fit the temperature, write the calibrated checkpoint, print the figures before and after."""
    parser = build_parser()
    given = positional(args)
    checkpoint = load_checkpoint(checkpoint_path(given, calibrated=False)) if given else None
    if checkpoint is not None:
        parser.set_defaults(data=checkpoint.data_config)
    config = parser.parse_args(args)
    data = data_from(config, parser, checkpoint)
    data.prepare_data()
    trainer = Trainer(
        accelerator=config.accelerator,
        devices=1,
        logger=False,
        default_root_dir=checkpoint.path.parent,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    calibration = calibrate_checkpoint(trainer, checkpoint.model, data, checkpoint.path)
    print(f"Checkpoint:      {relative(checkpoint.path)}")
    print("\n".join(calibration_table(calibration)))
    print(f"Calibrated:      {relative(calibration.path)}")


def main() -> int:
    """The command: ``calibrate`` on the command line's arguments; returns the exit code."""
    return run_command(calibrate)
