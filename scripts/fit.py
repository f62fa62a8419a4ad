#!/usr/bin/env python
"""Train an image classifier, then test its best checkpoint on the test split.

Examples:
    python scripts/fit.py                                    # the MLP on MNIST
    python scripts/fit.py --config configs/digits.yaml       # offline, on scikit-learn's bundled digits
    python scripts/fit.py --model CNN --data CIFAR10 --accelerator gpu --devices 2 --precision 16-mixed
    python scripts/fit.py --model my_file.MyNet              # your own ImageClassifier subclass
    python scripts/fit.py --print_config > run.yaml          # every option, as a file for --config
"""

import difflib
import os
import re
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

# `--model my_file.MyNet` imports my_file.py from the folder the command is run in.
sys.path.insert(0, os.getcwd())
# Raised inside Lightning itself on every run; nothing a user of this script can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# cross_validate.py and search.py build the CLI from the part of the command line that is fit.py's.
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")

import torch  # noqa: E402
from lightning.fabric.utilities.exceptions import MisconfigurationException  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402

from callbacks import ClassificationFigures, NonFiniteLossError, SaveTestMetrics, StopOnNonFiniteLoss  # noqa: E402
from datamodules import ClassificationDataModule, DataError  # noqa: E402
from models import ImageClassifier  # noqa: E402

SHORT_FLAGS = {
    "--accelerator": "--trainer.accelerator",
    "--devices": "--trainer.devices",
    "--strategy": "--trainer.strategy",
    "--num_nodes": "--trainer.num_nodes",
    "--precision": "--trainer.precision",
    "--max_epochs": "--trainer.max_epochs",
    "--seed": "--seed_everything",
    "--gradient_clip_val": "--trainer.gradient_clip_val",
    "--detect_anomaly": "--trainer.detect_anomaly",
}
BUILT_IN = {
    "model": ["MLP", "CNN", "ResNet9"],
    "data": ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "Digits", "ImageFolder"],
}
DESCRIPTION = (
    __doc__
    + "\nShort flags: "
    + ", ".join(f"{short} = {full}" for short, full in SHORT_FLAGS.items())
    + f".\nModels: {', '.join(BUILT_IN['model'])}, or the import path of an ImageClassifier subclass."
    + f"\nData: {', '.join(BUILT_IN['data'])}, or the import path of a ClassificationDataModule subclass."
    + "\n`--model.help CNN` and `--data.help ImageFolder` list a class's options."
)


def expand_short_flags(args: list[str]) -> list[str]:
    """Rewrite the short flags (``--devices 2``, ``--precision=16-mixed``) to their full names."""
    expanded = []
    for arg in args:
        name, equals, value = arg.partition("=")
        expanded.append(SHORT_FLAGS[name] + equals + value if name in SHORT_FLAGS else arg)
    return expanded


class FitCLI(LightningCLI):
    """LightningCLI with this project's defaults: checkpoints by val/acc, LR logging, data-shaped models."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(SaveTestMetrics, "test_metrics")
        parser.add_lightning_class_args(ClassificationFigures, "figures")
        parser.add_lightning_class_args(StopOnNonFiniteLoss, "stop_on_nonfinite")
        parser.add_argument(
            "--compile",
            type=bool,
            default=False,
            help="Compile the model with torch.compile: faster steps, mostly on GPUs, after a compilation "
            "of a minute or so at the start (it needs a C++ compiler for CPUs).",
        )
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.set_defaults(
            {
                "model": {"class_path": "models.MLP"},
                "data": {"class_path": "datamodules.MNIST"},
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-epoch={epoch}-val_acc={val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
                "trainer.max_epochs": 10,
                "trainer.benchmark": True,  # cuDNN picks its fastest kernels: every batch has the same shape
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": ".", "default_hp_metric": False},
                },
                "trainer.callbacks": [
                    {"class_path": "callbacks.ThrottledRichProgressBar"},
                    {"class_path": "lightning.pytorch.callbacks.RichModelSummary", "init_args": {"max_depth": 1}},
                ],
            }
        )

    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        if trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
            raise MisconfigurationException(
                f"--accelerator {trainer.accelerator}: no CUDA GPU is visible here (torch {torch.__version__}, "
                f"CUDA build {torch.version.cuda or 'none'}): "
                "use --accelerator cpu, or auto to take a GPU when there is one"
            )
        # Lightning refuses a progress bar or summary callback that its own flag turns off: drop the defaults.
        switched_off = {
            "ThrottledRichProgressBar": trainer.enable_progress_bar is False,
            "RichModelSummary": trainer.enable_model_summary is False,
        }
        trainer.callbacks = [
            callback
            for callback in trainer.callbacks or []
            if not switched_off.get(str(callback.class_path).rpartition(".")[2], False)
        ]


def user_message(err: BaseException) -> str:
    """One line for the user from an error of the CLI: the innermost cause, with the option it concerns."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    lines = str(chain[-1]).strip().splitlines()
    text = lines[0] if lines else type(chain[-1]).__name__
    keys = [match[1] for e in chain if (match := re.search(r'Parser key "([^"]+)"', str(e)))]
    key = ".".join(dict.fromkeys(keys)) or None  # nested keys, outermost first: model, lr -> model.lr
    unknown = re.fullmatch(r"Expected a dot import path string: (.*)", text)
    if key in BUILT_IN and unknown:
        name, choices = unknown[1], BUILT_IN[key]
        by_lower = {choice.lower(): choice for choice in choices}
        close = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.5)
        hint = f"did you mean {by_lower[close[0]]}? " if close else ""
        return (
            f"unknown --{key} {name!r}: {hint}choose one of {', '.join(choices)}, "
            "or give an import path such as my_file.MyClass"
        )
    return f"--{key}: {text}" if key and not text.startswith("--") else text


def relative(path: str | os.PathLike) -> str:
    """``path`` relative to the current folder where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(trainer: Trainer, run_dir: str, best_checkpoint: str) -> None:
    """The run's test accuracy and where its logs, checkpoint and metrics are."""
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
    saver = next(callback for callback in trainer.callbacks if isinstance(callback, SaveTestMetrics))
    shown = {name: value for name, value in metrics.items() if name != "test/acc" and "/class_acc/" not in name}
    others = ", ".join(f"{name} {value:.4f}" for name, value in shown.items())
    print(f"\nTest accuracy:   {metrics['test/acc']:.2%} ({others})")
    print(f"Run folder:      {relative(run_dir)}")
    print(
        f"Best checkpoint: {relative(best_checkpoint) if best_checkpoint else 'none (the final weights were tested)'}"
    )
    if saver.path is not None:
        print(f"Test metrics:    {relative(saver.path)}")
    print(f"TensorBoard:     tensorboard --logdir {relative(Path(run_dir).parent)}")


# Errors that are the user's to fix: reported as one `error:` line (see `report`), without a traceback.
USER_ERRORS = (ArgumentError, DataError, MisconfigurationException, ValueError, NonFiniteLossError)


def report(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; returns the exit code (2 for a bad flag, else 1)."""
    print(f"error: {user_message(err)}", file=sys.stderr)
    return 2 if isinstance(err, ArgumentError) else 1


def build_cli(args: list[str] | None = None) -> FitCLI:
    """Parse ``args`` (default: ``sys.argv``) and build the model, the datamodule and the Trainer."""
    return FitCLI(
        ImageClassifier,
        ClassificationDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        run=False,
        args=args,
        parser_kwargs={"description": DESCRIPTION, "exit_on_error": False},
    )


def fit(cli: FitCLI) -> str:
    """Fit the CLI's model on its datamodule; returns the best checkpoint's path ("" when none was kept)."""
    if cli.config.compile:
        cli.model.compile()  # the forward pass only: loss, metrics and logging stay eager
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli.trainer.checkpoint_callback.best_model_path if cli.trainer.checkpoint_callback else ""


def main() -> int:
    """Parse the options, fit, test the best checkpoint and print a summary; returns the exit code."""
    # Rewritten in place, not passed as args: Lightning's DDP launcher starts the other ranks with sys.argv.
    sys.argv[1:] = expand_short_flags(sys.argv[1:])
    try:
        cli = build_cli()
        trainer = cli.trainer
        best = fit(cli)
        trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or None)
    except USER_ERRORS as err:
        return report(err)
    run_dir = trainer.log_dir  # every rank must ask: under DDP it is broadcast from rank 0
    if trainer.is_global_zero:
        print_summary(trainer, run_dir, best)
    return 0


def run() -> int:
    """``main``, then the process group torn down: left to interpreter shutdown, gloo can abort the process."""
    try:
        return main()
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(run())
