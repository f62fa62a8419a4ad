#!/usr/bin/env python
"""Train an image classifier, then test its best checkpoint on the test split.

Examples:
    python scripts/fit.py                                    # the MLP on MNIST
    python scripts/fit.py --config configs/digits.yaml       # offline, on scikit-learn's bundled digits
    python scripts/fit.py --model CNN --data CIFAR10 --accelerator gpu --devices 2 --precision 16-mixed
    python scripts/fit.py --model my_file.MyNet              # your own ImageClassifier subclass
    python scripts/fit.py --print_config > run.yaml          # every option, as a file for --config
    python scripts/fit.py --config lightning_logs/version_0/config.yaml --ckpt_path last   # resume after a crash
"""

import ctypes
import difflib
import errno
import importlib
import os
import re
import sys
import textwrap
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

# `--model my_file.MyNet` imports my_file.py from the folder the command is run in.
sys.path.insert(0, os.getcwd())
# Raised inside Lightning itself on every run; nothing a user of this script can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# cross_validate.py and search.py build the CLI from the part of the command line that is fit.py's.
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")

import torch  # noqa: E402
import yaml  # noqa: E402
from cli_help import FitArgumentParser  # noqa: E402  (scripts/, next to this file)
from docstring_parser import DocstringStyle  # noqa: E402
from jsonargparse import ArgumentParser, Namespace, set_parsing_settings  # noqa: E402
from lightning.fabric.utilities.exceptions import MisconfigurationException  # noqa: E402
from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import LearningRateMonitor, RichProgressBar  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402

from callbacks import (  # noqa: E402
    ClassificationFigures,
    NonFiniteLossError,
    ProgressLog,
    RandomStateInCheckpoint,
    RunCheckpoint,
    SaveRunConfig,
    SaveTestMetrics,
    StopOnNonFiniteLoss,
)
from callbacks.quiet import STARTUP_NOISE, drop_lightning_messages, lightning_messages_dropped  # noqa: E402
from datamodules import ClassificationDataModule, DataError  # noqa: E402
from datamodules.errors import first_line  # noqa: E402
from models import ImageClassifier  # noqa: E402


def skip_nvml_without_driver() -> None:
    """Stop ``torch.cuda.is_available()`` from looking for NVIDIA's NVML library where there is none.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` on import, so that looking for a GPU does
    not initialize CUDA (which forked processes could not use). Where NVML's library cannot be
    loaded (no NVIDIA driver), torch falls back to the plain CUDA check anyway, but only after
    trying to load the library again on every call, and its optimizers make one call on every
    step: a step of the MNIST MLP took 17.7 ms with the variable and 15.8 ms without on a 2-core
    CPU. Without the library the answer is the same, so the variable goes.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


skip_nvml_without_driver()
# The docstrings of this project and Lightning are Google style: trying every style took a tenth of the start-up.
set_parsing_settings(docstring_parse_style=DocstringStyle.GOOGLE)
drop_lightning_messages(*STARTUP_NOISE)  # fit prints one line of what the run uses instead (describe_run)

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
    "model": ["MLP", "CNN", "ResNet9", "Pretrained"],
    "data": ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "Digits", "ImageFolder"],
}
DESCRIPTION = (
    __doc__
    + textwrap.fill("Short flags: " + ", ".join(f"{short} = {full}" for short, full in SHORT_FLAGS.items()), 100)
    + f".\nModels: {', '.join(BUILT_IN['model'])}, or the import path of an ImageClassifier subclass."
    + f"\nData: {', '.join(BUILT_IN['data'])}, or the import path of a ClassificationDataModule subclass."
    + "\n`--model.help CNN` and `--data.help ImageFolder` list a class's options."
)
# Headings of the option groups in --help (jsonargparse would take each class docstring's first line).
GROUP_TITLES = {
    "trainer": "Lightning's Trainer (--trainer.*; the short flags above set the most used)",
    "model": "The model (--model.help NAME lists a model's options)",
    "data": "The data (--data.help NAME lists a datamodule's options)",
    "checkpoint": "Checkpoints (Lightning's ModelCheckpoint): the best by val/acc, and last.ckpt",
    "lr_monitor": "Learning-rate logging (Lightning's LearningRateMonitor)",
    "test_metrics": "After testing: test_metrics.json and TensorBoard's HPARAMS tab",
    "figures": "Confusion matrix and misclassified images in TensorBoard, after each validation and test",
    "stop_on_nonfinite": "Stop when the training loss turns NaN or infinite",
}


def expand_short_flags(args: list[str]) -> list[str]:
    """Rewrite the short flags (``--devices 2``, ``--precision=16-mixed``) to their full names."""
    expanded = []
    for arg in args:
        name, equals, value = arg.partition("=")
        expanded.append(SHORT_FLAGS[name] + equals + value if name in SHORT_FLAGS else arg)
    return expanded


class RunError(Exception):
    """A problem with the run's checkpoint or folder, told to the user in one line."""


class FitCLI(LightningCLI):
    """LightningCLI with this project's defaults: checkpoints by val/acc, LR logging, data-shaped models."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
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
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Resume training from this checkpoint: a .ckpt file, or last for the newest last.ckpt of the "
            "runs in the logger's folder. Give the options of the run that wrote it (e.g. --config "
            "lightning_logs/version_0/config.yaml): the run goes on in that folder, with its weights, optimizer, "
            "schedule, random generators and place in the data restored.",
        )
        for key, title in GROUP_TITLES.items():
            if key in parser.groups:
                parser.groups[key].title = title
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
                "trainer.plugins": {"class_path": "callbacks.AtomicCheckpointIO"},
                "trainer.max_epochs": 10,
                "trainer.benchmark": True,  # cuDNN picks its fastest kernels: every batch has the same shape
                "trainer.logger": {
                    "class_path": "callbacks.RunLogger",
                    "init_args": {"save_dir": ".", "default_hp_metric": False},
                },
                "trainer.callbacks": [
                    {"class_path": "callbacks.ThrottledRichProgressBar"},
                    {"class_path": "callbacks.NetworkSummary", "init_args": {"max_depth": 1}},
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
            "NetworkSummary": trainer.enable_model_summary is False,
        }
        trainer.callbacks = [
            callback
            for callback in trainer.callbacks or []
            if not switched_off.get(str(callback.class_path).rpartition(".")[2], False)
        ]
        checkpoint = resolve_checkpoint(self.config)
        if checkpoint is not None:
            self.config.ckpt_path = str(checkpoint)
            continue_in_its_folder(self.config, checkpoint)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        log_progress_off_terminal(trainer)
        return trainer

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            inner = error_chain(err)[-1]
            if isinstance(inner, yaml.MarkedYAMLError) and inner.problem_mark is not None:
                mark, files = inner.problem_mark, " ".join(config_files(sys.argv[1:] if args is None else args))
                where = f"line {mark.line + 1}, column {mark.column + 1}"
                raise ArgumentError(None, f"--config {files}: not valid YAML: {inner.problem} ({where})") from None
            unknown = unknown_option(parser, err)
            if unknown is None:
                raise
            name, close = unknown
            hint = f"did you mean {close}?" if close else "see --help for the options"
            raise ArgumentError(None, f"unknown option {name}: {hint}") from None


def log_progress_off_terminal(trainer: Trainer) -> None:
    """Put plain progress lines (``ProgressLog``) in place of a rich progress bar where the output is no terminal.

    Rich draws its bar in place, which a file or a pipe (nohup, SLURM, CI) cannot show: such a log held
    nothing from the model summary to the final epoch's bar. A notebook keeps the bar.
    """
    from rich import get_console

    console = get_console()
    bar = trainer.progress_bar_callback
    if isinstance(bar, RichProgressBar) and not console.is_terminal and not console.is_jupyter:
        trainer.callbacks[trainer.callbacks.index(bar)] = ProgressLog()


def describe_run(trainer: Trainer) -> str:
    """One line of what the run uses: device, processes, precision (for Lightning's lines about GPUs and TPUs)."""
    # No GPU name: asking CUDA for it here would break the strategies that fork the processes later (ddp_fork).
    device = trainer.strategy.root_device.type
    where = f"{trainer.num_devices} x {device}" if trainer.num_devices > 1 else device
    processes = f"{trainer.world_size} process{'es' if trainer.world_size > 1 else ''}"
    if trainer.num_nodes > 1:
        processes += f" on {trainer.num_nodes} machines"
    return f"Running on {where}, {processes}, precision {trainer.precision}"


def config_files(args: list[str]) -> list[str]:
    """The files given to ``--config`` in ``args``."""
    after_flag = [value for flag, value in zip(args, args[1:], strict=False) if flag == "--config"]
    return after_flag + [arg.removeprefix("--config=") for arg in args if arg.startswith("--config=")]


def versioned_logger(config: Namespace) -> Namespace | None:
    """The init arguments of the run's (first) logger when it keeps each run in a version folder."""
    logger = config.trainer.logger
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    init_args = getattr(logger, "init_args", None)
    if not isinstance(init_args, Namespace) or not all(key in init_args for key in ("save_dir", "name", "version")):
        return None
    return init_args


def runs_folder(config: Namespace, logger: Namespace) -> Path:
    """The folder that holds the logger's version folders (``lightning_logs`` by default)."""
    return Path(logger.save_dir or config.trainer.default_root_dir or ".") / (logger.name or "")


def resolve_checkpoint(config: Namespace) -> Path | None:
    """The checkpoint file ``--ckpt_path`` names; for ``last``, the newest ``last.ckpt`` of the earlier runs."""
    if not config.ckpt_path:
        return None
    if config.ckpt_path != "last":
        path = Path(config.ckpt_path)
        if not path.is_file():
            raise RunError(f"--ckpt_path {path}: no such checkpoint file; give a .ckpt file, or last")
        return path
    logger = versioned_logger(config)
    if config.checkpoint.dirpath:
        folder, pattern = Path(config.checkpoint.dirpath), "last*.ckpt"
    elif logger is not None:
        folder, pattern = runs_folder(config, logger), "*/checkpoints/last*.ckpt"
    else:
        folder, pattern = Path(config.trainer.default_root_dir or "."), "checkpoints/last*.ckpt"
    found = [path for path in folder.glob(pattern) if path.is_file()]
    if not found:
        raise RunError(f"--ckpt_path last: no last.ckpt in {folder / pattern} to resume; give the checkpoint's path")
    return max(found, key=lambda path: path.stat().st_mtime)


def continue_in_its_folder(config: Namespace, checkpoint: Path) -> None:
    """Point the logger at the version folder that holds ``checkpoint``, when it is one of its runs."""
    logger = versioned_logger(config)
    if logger is None or logger.version is not None or config.checkpoint.dirpath:
        return
    run = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run.parent == runs_folder(config, logger).resolve():
        logger.version = run.name


def check_checkpoint(path: str, model: LightningModule) -> None:
    """Fail in one line, before training, when ``path`` is unreadable or holds another model's weights."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # any failure to load means the same to the user: this file cannot be resumed
        raise RunError(
            f"cannot read the checkpoint {path} ({first_line(err)}): "
            "it is truncated or not a checkpoint; resume from another one of its folder"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "loops" not in checkpoint:
        raise RunError(f"{path} is not a Lightning training checkpoint: nothing to resume from it")
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    found = {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items()}
    if found != expected:
        differ = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise RunError(
            f"the checkpoint {path} holds another model than this run's {type(model).__name__} "
            f"({len(differ)} weights differ, e.g. {differ[0]}): give the options of the run that wrote it, "
            "e.g. --config with its config.yaml"
        )


def option_names(parser: ArgumentParser) -> list[str]:
    """Every ``--option`` that ``parser`` accepts."""
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def unknown_option(parser: ArgumentParser, err: ArgumentError) -> tuple[str, str | None] | None:
    """The unknown option that ``err`` reports, if it reports one, with the closest accepted option, if one is close."""
    messages = [str(e) for e in error_chain(err)]
    unknown = re.search(r"unrecognized arguments: (--[^\s=]+)", messages[-1])
    nested = re.fullmatch(r"Option '([^']+)' is not accepted", messages[-1])
    class_path = next((m[1] for text in messages if (m := re.search(r"given class_path '([^']+)'", text))), None)
    if unknown:
        name, choices = unknown[1], option_names(parser)
    elif nested and class_path:
        key = re.search(r'Parser key "([^"]+)"', messages[0])[1]
        module, _, cls = class_path.rpartition(".")
        options = ArgumentParser()
        options.add_class_arguments(getattr(importlib.import_module(module), cls), key)
        name, choices = f"--{key}.{nested[1]}", option_names(options)
    else:
        return None
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
    return name, close[0] if close else None


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return chain


def os_error_message(err: OSError) -> str:
    """One line for a failure to read or write a file: what failed, and what to do."""
    where = f"{err.filename}: " if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{where}no space left on the disk; the checkpoints written before are whole: "
            "free some space, then resume with --ckpt_path last"
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
        return (
            f"{where}cannot write there ({err.strerror}): run from a writable folder, or point "
            "--trainer.logger.init_args.save_dir at one"
        )
    return f"{where}{err.strerror or err}"


def error_line(err: BaseException) -> str:
    """The first line of ``err``'s message; for an error re-raised from a DataLoader worker, the original's."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "worker process" in lines[0]:
        return re.sub(r"^[\w.]+: ", "", lines[-1])  # "datamodules.errors.DataError: the message"
    return first_line(err)


def user_message(err: BaseException) -> str:
    """One line for the user from an error of the CLI: ours as they are, others' innermost cause, with its option."""
    chain = error_chain(err)
    text = error_line(next((e for e in chain if isinstance(e, (DataError, RunError))), chain[-1]))
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
USER_ERRORS = (ArgumentError, DataError, MisconfigurationException, NonFiniteLossError, OSError, RunError, ValueError)


def report(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; returns the exit code (2 for a bad flag, else 1)."""
    print(f"error: {os_error_message(err) if isinstance(err, OSError) else user_message(err)}", file=sys.stderr)
    return 2 if isinstance(err, ArgumentError) else 1


def build_cli(args: list[str] | None = None) -> FitCLI:
    """Parse ``args`` (default: ``sys.argv``) and build the model, the datamodule and the Trainer."""
    return FitCLI(
        ImageClassifier,
        ClassificationDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_callback=SaveRunConfig,
        parser_class=FitArgumentParser,
        # The model builds its own optimizer and schedule (--model.optimizer, --model.scheduler): Lightning's
        # --optimizer and --lr_scheduler options would only conflict with them.
        auto_configure_optimizers=False,
        trainer_defaults={"callbacks": [RandomStateInCheckpoint()]},  # always on, not an option
        run=False,
        args=args,
        parser_kwargs={"description": DESCRIPTION, "exit_on_error": False},
    )


def fit(cli: FitCLI) -> str:
    """Fit the CLI's model on its datamodule; returns the best checkpoint's path ("" when none was kept)."""
    if cli.config.ckpt_path:
        check_checkpoint(cli.config.ckpt_path, cli.model)
    if cli.config.compile:
        cli.model.compile()  # the forward pass only: loss, metrics and logging stay eager
    if cli.trainer.is_global_zero:
        print(describe_run(cli.trainer), flush=True)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    return cli.trainer.checkpoint_callback.best_model_path if cli.trainer.checkpoint_callback else ""


def main() -> int:
    """Parse the options, fit, test the best checkpoint and print a summary; returns the exit code."""
    # Rewritten in place, not passed as args: Lightning's DDP launcher starts the other ranks with sys.argv.
    sys.argv[1:] = expand_short_flags(sys.argv[1:])
    try:
        cli = build_cli()
        trainer = cli.trainer
        best = fit(cli)
        # verbose=False: Lightning's table would print raw float32 values; print_summary rounds them.
        with lightning_messages_dropped(r"^Restoring states from the checkpoint", r"^Loaded model weights from"):
            trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or None, verbose=False)
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
