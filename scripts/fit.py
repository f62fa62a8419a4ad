#!/usr/bin/env python
"""Train an image classifier, then test its best checkpoint on the test split.

Examples:
    python scripts/fit.py                                    # the MLP on MNIST
    python scripts/fit.py --config configs/digits.yaml       # offline, on scikit-learn's bundled digits
    python scripts/fit.py --model CNN --data CIFAR10 --accelerator gpu --devices 2 --precision 16-mixed
    python scripts/fit.py --model my_file.MyNet              # your own ImageClassifier subclass
    python scripts/fit.py --print_config > run.yaml          # every option, as a file for --config
    python scripts/fit.py --config configs/digits.yaml --name first-try  # the run folder lightning_logs/first-try
    python scripts/fit.py --config lightning_logs/digits-cnn-1/config.yaml --ckpt_path last   # resume that run
"""

import ctypes
import difflib
import errno
import importlib
import importlib.util
import os
import re
import shlex
import sys
import textwrap
import warnings
from argparse import ArgumentError
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `--model my_file.MyNet` imports my_file.py from the folder the command is run in.
sys.path.insert(0, os.getcwd())
# Raised inside Lightning itself on every run; nothing a user of this script can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
# cross_validate.py and search.py build the CLI from the part of the command line that is fit.py's.
warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
# A run without a validation part (--data.val_size 0) gives Lightning an empty list of validation loaders.
warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
# The summary's size in MB is that of float32 weights, which is what a checkpoint holds under mixed precision too.
warnings.filterwarnings("ignore", message=r"Precision \S+ is not supported by the model summary")

import torch  # noqa: E402
import yaml  # noqa: E402
from cli_help import FitArgumentParser  # noqa: E402  (scripts/, next to this file)
from docstring_parser import DocstringStyle  # noqa: E402
from jsonargparse import ArgumentParser, Namespace, set_parsing_settings  # noqa: E402
from lightning.fabric.utilities.exceptions import MisconfigurationException  # noqa: E402
from lightning.fabric.utilities.rank_zero import rank_zero_only  # noqa: E402
from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, RichProgressBar  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from callbacks import (  # noqa: E402
    ClassificationFigures,
    EpochMetricsCSV,
    NonFiniteLossError,
    OptionsInCheckpoint,
    ProgressLog,
    RandomStateInCheckpoint,
    ReservedRunFolder,
    RunCheckpoint,
    RunHyperparameters,
    RunInterrupted,
    SaveProvenance,
    SaveRunConfig,
    SaveTestMetrics,
    ShareRunFiles,
    StopOnInterrupt,
    StopOnNonFiniteLoss,
    TrainLRMonitor,
)
from callbacks.quiet import STARTUP_NOISE, drop_lightning_messages, lightning_messages_dropped  # noqa: E402
from callbacks.resume import OPTIONS_KEY  # noqa: E402
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
        parser.add_lightning_class_args(TrainLRMonitor, "lr_monitor")
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
            help="Resume a run: its folder or name (lightning_logs/digits-cnn-1, digits-cnn-1: its last.ckpt), a "
            ".ckpt file, or last: the last.ckpt of the run whose config.yaml is given with --config (or named with "
            "--name; else the newest run with these options). The run goes on in its folder, with its weights, "
            "optimizer, schedule, random generators and place in the data restored; options that do not match the "
            "checkpoint's are refused.",
        )
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help="The run's folder name in lightning_logs (default: data-model-N, e.g. digits-cnn-3).",
        )
        parser.add_argument(
            "--init_weights",
            type=str | None,
            default=None,
            help="Start a new run (new optimizer and schedule) from the weights of a checkpoint: a .ckpt file, "
            "or a run's folder or name (its last.ckpt). E.g. to train a finished run for more epochs.",
        )
        for key, title in GROUP_TITLES.items():
            if key in parser.groups:
                parser.groups[key].title = title
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.input_shape", "model.init_args.input_shape", apply_on="instantiate")
        parser.set_defaults(
            {
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
        check_logger_packages(trainer.logger)
        if not validates(self.config.data.init_args):
            without_validation(self.config)
        prepare_run(self.config, self.parser, self.trainer_defaults["callbacks"])

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        prefix = run_prefix(self.config)
        for logger in self.trainer.loggers:
            if isinstance(logger, ReservedRunFolder):
                logger.folder_prefix = prefix

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        # Lightning refuses these callbacks when the switch that they need is off: leave them out.
        off = (ModelCheckpoint,) if config.get("enable_checkpointing") is False else ()
        off += (LearningRateMonitor,) if config.get("logger") in (False, []) else ()
        kept = [callback for callback in callbacks if not isinstance(callback, off)]
        return super()._instantiate_trainer(config, kept)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        log_progress_off_terminal(trainer)
        return trainer

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        given = sys.argv[1:] if args is None else list(args)
        try:
            super().parse_arguments(parser, with_default_classes(given))
        except ArgumentError as err:
            inner = error_chain(err)[-1]
            if isinstance(inner, yaml.MarkedYAMLError) and inner.problem_mark is not None:
                mark, files = inner.problem_mark, " ".join(config_files(given))
                where = f"line {mark.line + 1}, column {mark.column + 1}"
                raise ArgumentError(None, f"--config {files}: not valid YAML: {inner.problem} ({where})") from None
            unknown = unknown_option(parser, err)
            key = unknown[0].removeprefix("--") if unknown else error_key(err)
            files = [file for file in config_files(given) if key and holds_key(file, key)]
            if unknown is None and not files:
                raise
            if unknown is None:
                message = user_message(err).removeprefix("--")
            else:
                name, close = unknown
                dashes = "" if files else "--"  # a file spells its keys without the dashes of a flag
                hint = f"did you mean {dashes}{close[2:]}?" if close else "see --help for the options"
                message = f"unknown option {dashes}{name[2:]}: {hint}"
            raise ArgumentError(None, (f"--config {' '.join(files)}: " if files else "") + message) from None


def with_default_classes(args: list[str]) -> list[str]:
    """``args`` with ``--model=models.MLP`` and ``--data=datamodules.MNIST`` first, where they choose no class.

    Not parser defaults: jsonargparse keeps a default class's option values when another class is
    chosen (jsonargparse issue 460), so every option that Airbench94 shares with the MLP took the MLP's
    default (lr 0.001 in place of 11.5) and its recipe did not learn.
    """
    defaults = {"model": "models.MLP", "data": "datamodules.MNIST"}
    missing = [key for key in defaults if not chooses_class(args, key)]
    return [f"--{key}={defaults[key]}" for key in missing] + args


def chooses_class(args: list[str], key: str) -> bool:
    """Whether ``args`` choose the class of ``key`` (model or data): by ``--KEY``, or in a ``--config`` file."""
    flags = (f"--{key}", f"--{key}.class_path")
    if any(arg.split("=", 1)[0] in flags for arg in args):
        return True
    for path in config_files(args):
        node = read_yaml(path)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) or (isinstance(value, dict) and "class_path" in value):
            return True
    return False


def validates(data_options: Namespace | dict[str, Any]) -> bool:
    """Whether a datamodule with these options keeps a validation part: not with ``val_size`` 0 (and no folds)."""
    return not (data_options.get("val_size") == 0 and not data_options.get("folds"))


def without_validation(config: Namespace) -> None:
    """Keep only ``last.ckpt`` (nothing is chosen on validation); refuse the options that need validation."""
    if config.model.init_args.get("scheduler") == "plateau":
        raise ValueError("--data.val_size 0 leaves no validation for the plateau schedule: choose another one")
    for callback in config.trainer.callbacks or []:
        monitor = str(getattr(callback, "init_args", {}).get("monitor") or "")
        if monitor.startswith("val/"):
            name = str(callback.class_path).rpartition(".")[2]
            raise ValueError(f"--data.val_size 0 leaves no validation: {name} cannot monitor {monitor}")
    config.checkpoint.monitor = None
    config.checkpoint.save_top_k = 0


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


def read_yaml(path: str) -> Any:
    """The YAML file at ``path``, or None where it cannot be read or parsed (the parser says why)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None


def holds_key(path: str, key: str) -> bool:
    """Whether the YAML file at ``path`` sets the option ``key`` (``model.lr`` also as ``model.init_args.lr``)."""
    node = read_yaml(path)
    for part in key.split("."):
        if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# The package each of Lightning's loggers needs, which this project does not install (see the `test` extra).
LOGGER_PACKAGES = {
    "MLFlowLogger": "mlflow",
    "RunMLFlowLogger": "mlflow",
    "WandbLogger": "wandb",
    "CometLogger": "comet_ml",
    "NeptuneLogger": "neptune",
}


def check_logger_packages(logger: Any) -> None:
    """Fail in one line, before anything is written, when a chosen logger's package is not installed."""
    for each in logger if isinstance(logger, list) else [logger]:
        name = str(getattr(each, "class_path", "")).rpartition(".")[2]
        package = LOGGER_PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise RunError(
                f"the {name} logger needs the {package} package, which is not installed: pip install {package}"
            )


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


# Data options that say where the data is or how it is loaded, not what it is: free to change on a resume.
LOADING_OPTIONS = {"data_dir", "download", "root", "num_workers", "pin_memory", "in_memory", "on_device"}
# Options that set how many steps the run takes: a schedule over the whole run (onecycle, cosine) is fixed by them.
LENGTH_OPTIONS = ("trainer.max_epochs", "trainer.max_steps", "trainer.accumulate_grad_batches")


def run_prefix(config: Namespace) -> str:
    """The start of the run folders' names: the data and the model, e.g. ``digits-cnn``."""
    names = [str(config[key].class_path).rpartition(".")[2] for key in ("data", "model")]
    return "-".join(re.sub(r"[^a-z0-9]+", "", name.lower()) or "run" for name in names)


def run_options(config: Namespace, parser: ArgumentParser) -> dict[str, Any]:
    """The options a checkpoint's run must share with its resume, flat (``model.init_args.lr``: value)."""
    dumped = yaml.safe_load(parser.dump(config))
    flat: dict[str, Any] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{key}.{name}")
        elif key.rpartition(".")[2] not in LOADING_OPTIONS:
            flat[key] = value

    walk(dumped.get("model"), "model")
    walk(dumped.get("data"), "data")
    for key in (*LENGTH_OPTIONS, "trainer.limit_train_batches"):
        flat[key] = dumped["trainer"].get(key.partition(".")[2])
    return flat


def differences(stored: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """The options that differ, as ``--model.lr 0.01 (its run: 0.001)``."""
    keys = sorted(key for key in stored.keys() | options.keys() if stored.get(key) != options.get(key))
    names = {key: key.replace(".init_args", "").removesuffix(".class_path") for key in keys}
    return [f"--{names[key]} {options.get(key)} (its run: {stored.get(key)})" for key in keys]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The training checkpoint at ``path``; a RunError in one line when it is unreadable or no such checkpoint."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # any failure to load means the same to the user: this file cannot be resumed
        raise RunError(
            f"cannot read the checkpoint {path} ({first_line(err)}): "
            "it is truncated or not a checkpoint; resume from another one of its folder"
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "loops" not in checkpoint:
        raise RunError(f"{path} is not a Lightning training checkpoint: nothing to resume from it")
    return checkpoint


def run_checkpoint(folder: Path, option: str) -> Path:
    """The ``last.ckpt`` of the run in ``folder``."""
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise RunError(
            f"{option}: the run {relative(folder)} has no checkpoints/last.ckpt (it stopped before the end of its "
            "first epoch, or ran without checkpoints): start it again instead"
        )
    return last


def named_checkpoint(value: str, config: Namespace, option: str) -> Path:
    """The checkpoint ``value`` names: a file, a run folder, or a run's name in the runs folder."""
    path = Path(value)
    if path.is_file():
        return path
    logger = versioned_logger(config)
    for folder in (path, runs_folder(config, logger) / value if logger is not None else None):
        if folder is not None and folder.is_dir():
            return run_checkpoint(folder, option)
    raise RunError(f"{option} {value}: no such checkpoint file, run folder or run name")


def pointed_run(config: Namespace, logger: Namespace | None) -> Path | None:
    """The run folder the command points at: ``--name``'s, or the folder of a ``config.yaml`` given with --config."""
    if config.get("name") and logger is not None:
        return runs_folder(config, logger) / config.name
    for file in reversed(config.get("config") or []):
        folder = Path(os.fspath(file)).parent
        in_runs = logger is not None and folder.resolve().parent == runs_folder(config, logger).resolve()
        if (folder / "checkpoints").is_dir() or in_runs:
            return folder
    return None


def last_checkpoint(config: Namespace, options: dict[str, Any]) -> Path:
    """For ``--ckpt_path last``: the pointed run's ``last.ckpt``, else the newest one written with these options."""
    logger = versioned_logger(config)
    run = pointed_run(config, logger)
    if run is not None:
        return run_checkpoint(run, "--ckpt_path last")
    if config.checkpoint.dirpath:
        folder, pattern = Path(config.checkpoint.dirpath), "last*.ckpt"
    elif logger is not None:
        folder, pattern = runs_folder(config, logger), "*/checkpoints/last*.ckpt"
    else:
        folder, pattern = Path(config.trainer.default_root_dir or "."), "checkpoints/last*.ckpt"
    found = sorted((path for path in folder.glob(pattern) if path.is_file()), key=lambda p: -p.stat().st_mtime)
    if not found:
        raise RunError(f"--ckpt_path last: no last.ckpt in {folder / pattern} to resume; give the checkpoint's path")
    newest = []
    for path in found:
        stored = load_checkpoint(path).get(OPTIONS_KEY)
        if stored is None or not differences(stored, options):
            return path
        newest = newest or differences(stored, options)
    raise RunError(
        f"--ckpt_path last: no run in {relative(folder)} was trained with these options (the newest, "
        f"{relative(found[0].parent.parent)}, had {', '.join(newest[:2])}); name the run: --ckpt_path "
        f"{relative(folder)}/RUN, or give its options with --config {relative(folder)}/RUN/config.yaml"
    )


def check_options(path: Path, options: dict[str, Any], max_epochs: int | None) -> None:
    """Refuse to resume ``path`` with a model, data or schedule other than its run's (nothing else checks them)."""
    checkpoint = load_checkpoint(path)
    stored = checkpoint.get(OPTIONS_KEY)
    if stored is None:
        return  # written before checkpoints kept their options
    differ = differences(stored, options)
    length = [key for key in LENGTH_OPTIONS if stored.get(key) != options.get(key)]
    whole_run_schedule = any(
        key in state for state in checkpoint.get("lr_schedulers", []) for key in ("total_steps", "T_max")
    )
    run = relative(path.parent.parent) if path.parent.name == "checkpoints" else relative(path)
    if length and whole_run_schedule:
        epochs = stored.get("trainer.max_epochs")
        more = max_epochs - epochs if max_epochs and epochs and max_epochs > epochs else "N"
        raise RunError(
            f"{', '.join(differ)}: the learning-rate schedule of {run} was made for its {epochs} epochs and ends "
            f"there; resume it with its own length, or train on in a new run from its weights: --init_weights {run} "
            f"--max_epochs {more}"
        )
    differ = [line for line in differ if not any(f"--{key} " in line for key in LENGTH_OPTIONS)]
    if differ:
        raise RunError(
            f"{relative(path)} was written with other options: {', '.join(differ[:3])}: give the options of the run "
            "that wrote it (--config with its config.yaml), or start a new run from its weights with --init_weights"
        )


def continue_in_its_folder(config: Namespace, checkpoint: Path) -> None:
    """Point the logger at the run folder that holds ``checkpoint``, when it is one of its runs."""
    logger = versioned_logger(config)
    if logger is None or logger.version is not None or config.checkpoint.dirpath:
        return
    run = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run.parent == runs_folder(config, logger).resolve():
        logger.version = run.name


def prepare_run(config: Namespace, parser: ArgumentParser, callbacks: list[Callback]) -> None:
    """Check the run's options, pick its folder and the checkpoint it resumes, and store its options in checkpoints."""
    trainer = config.trainer
    if trainer.max_epochs == 0:
        raise RunError(
            "--max_epochs 0 trains nothing: the test would measure untrained weights; give 1 or more "
            "(scripts/test.py tests a checkpoint)"
        )
    if trainer.logger is False:  # no logs, but still a folder of its own for the checkpoints and config.yaml
        folder = Namespace(save_dir=".", name="lightning_logs", version=None)
        trainer.logger = Namespace(class_path="callbacks.RunFolder", init_args=folder)
    if config.ckpt_path and config.init_weights:
        raise RunError("--ckpt_path resumes a run, --init_weights starts a new one from its weights: give one of them")
    logger = versioned_logger(config)
    if config.name and logger is not None:
        logger.version = config.name
        # Rank 0 only: the other processes of a DDP run start when rank 0 may have made the folder already.
        if rank_zero_only.rank == 0 and (runs_folder(config, logger) / config.name).exists() and not config.ckpt_path:
            raise RunError(
                f"--name {config.name}: {relative(runs_folder(config, logger) / config.name)} holds another run: "
                f"choose another name, or resume that run with --ckpt_path {config.name}"
            )
    options = run_options(config, parser)
    next(callback for callback in callbacks if isinstance(callback, OptionsInCheckpoint)).options = options
    if config.init_weights:
        config.init_weights = str(named_checkpoint(config.init_weights, config, "--init_weights"))
    if not config.ckpt_path:
        return
    if config.ckpt_path == "last":
        checkpoint = last_checkpoint(config, options)
    else:
        checkpoint = named_checkpoint(config.ckpt_path, config, "--ckpt_path")
    check_options(checkpoint, options, trainer.max_epochs)
    config.ckpt_path = str(checkpoint)
    continue_in_its_folder(config, checkpoint)


def check_checkpoint(path: str, model: LightningModule) -> dict[str, Any]:
    """The checkpoint at ``path``; fails in one line, before training, when it holds another model's weights."""
    checkpoint = load_checkpoint(Path(path))
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    found = {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items()}
    if found != expected:
        differ = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise RunError(
            f"the checkpoint {path} holds another model than this run's {type(model).__name__} "
            f"({len(differ)} weights differ, e.g. {differ[0]}): give the options of the run that wrote it, "
            "e.g. --config with its config.yaml"
        )
    return checkpoint


def option_names(parser: ArgumentParser) -> list[str]:
    """Every ``--option`` that ``parser`` accepts."""
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def unknown_option(parser: ArgumentParser, err: ArgumentError) -> tuple[str, str | None] | None:
    """The unknown option that ``err`` reports, if it reports one, with the closest accepted option, if one is close."""
    messages = [str(e) for e in error_chain(err)]
    unknown = re.search(r"unrecognized arguments: (--[^\s=]+)", messages[-1])
    nested = re.fullmatch(r"Option '([^']+)' is not accepted", messages[-1])
    group = re.fullmatch(r"Group '([^']+)' does not accept option '([^']+)'", messages[-1])
    class_path = next((m[1] for text in messages if (m := re.search(r"given class_path '([^']+)'", text))), None)
    if unknown or group:
        name, choices = unknown[1] if unknown else f"--{group[1]}.{group[2]}", option_names(parser) + [*SHORT_FLAGS]
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


def error_key(err: BaseException) -> str | None:
    """The option that an error of the parser is about, such as ``model.lr``, if it names one."""
    keys = [match[1] for e in error_chain(err) if (match := re.search(r'Parser key "([^"]+)"', str(e)))]
    return ".".join(dict.fromkeys(keys)) or None  # nested keys, outermost first: model, lr -> model.lr


def user_message(err: BaseException) -> str:
    """One line for the user from an error of the CLI: ours as they are, others' innermost cause, with its option."""
    chain = error_chain(err)
    text = error_line(next((e for e in chain if isinstance(e, (DataError, RunError))), chain[-1]))
    key = error_key(err)
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


def tested_checkpoint(trainer: Trainer, best: str) -> str | None:
    """The checkpoint a run is tested on: the best one, else (no validation chose one) ``last.ckpt``, if any."""
    callback = trainer.checkpoint_callback
    return best or (callback.last_model_path if callback is not None else "") or None


def print_summary(trainer: Trainer, run_dir: str, best_checkpoint: str, tested: str | None = None) -> None:
    """The run's test accuracy and where its logs, checkpoint (or ``tested``, when none was best) and metrics are."""
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
    print(f"Run folder:      {relative(run_dir)}")
    if best_checkpoint:
        print(f"Best checkpoint: {relative(best_checkpoint)}")
    elif tested:
        print(f"Best checkpoint: none (no validation part, nothing chosen); tested {relative(tested)}")
    else:
        print("Best checkpoint: none (the final weights were tested)")
    if saver.path is not None:
        print(f"Test metrics:    {relative(saver.path)}")
    if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
        print(f"TensorBoard:     tensorboard --logdir {relative(Path(run_dir).parent)}")


# Errors that are the user's to fix: reported as one `error:` line (see `report`), without a traceback.
USER_ERRORS = (ArgumentError, DataError, MisconfigurationException, NonFiniteLossError, OSError, RunError, ValueError)


def report(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; returns the exit code (2 for a bad flag, else 1).

    Under DDP only the first process of the job to meet an error prints it (see ``first_to_report``).
    """
    if first_to_report():
        print(f"error: {os_error_message(err) if isinstance(err, OSError) else user_message(err)}", file=sys.stderr)
    return 2 if isinstance(err, ArgumentError) else 1


def first_to_report() -> bool:
    """Whether this process is the first of its DDP job to report an error (always, outside DDP).

    The processes count their reports in the process group's key-value store, which global rank 0
    holds: an error that every process meets (bad data in setup) is printed once, and one that a
    single process meets (a damaged image in its shard, a NaN loss in its batch) by that process.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    try:
        store = torch.distributed.distributed_c10d._get_default_store()  # torch has no public access to it
        return store.add("user_errors_reported", 1) == 1
    except Exception:  # any failure to reach the store: it ended with global rank 0, after rank 0's report
        return False


def stopped_peer_code(err: RuntimeError) -> int | None:
    """The exit code for DDP's failure to reach a process of the job that has ended; None for other errors.

    That process said why (or printed its traceback): only where none of the job has reported an
    error yet is one line printed here.
    """
    if not (isinstance(err, torch.distributed.DistError) or "gloo" in str(err)):
        return None
    if first_to_report():
        print(f"error: another process of this DDP job stopped ({first_line(err)})", file=sys.stderr)
    return 1


def stopped_code(err: Exception) -> int:
    """The exit code of a command that ``err`` stopped: a user's error reported in one ``error:`` line, the end of
    a DDP process after another's error (see ``stopped_peer_code``); any other error is raised again."""
    if isinstance(err, USER_ERRORS):
        return report(err)
    if isinstance(err, RuntimeError) and (code := stopped_peer_code(err)) is not None:
        return code
    raise err


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
        # Always on, not options.
        trainer_defaults={
            "callbacks": [
                RandomStateInCheckpoint(),
                OptionsInCheckpoint(),
                StopOnInterrupt(),
                RunHyperparameters(),
                EpochMetricsCSV(),
                SaveProvenance(),
                ShareRunFiles(),
            ]
        },
        run=False,
        args=args,
        # allow_abbrev: argparse would take --trainer.max_epoch (or any prefix of an option) for the option.
        parser_kwargs={"description": DESCRIPTION, "exit_on_error": False, "allow_abbrev": False},
    )


def fit(cli: FitCLI) -> str:
    """Fit the CLI's model on its datamodule; returns the best checkpoint's path ("" when none was kept)."""
    if cli.config.ckpt_path:
        check_checkpoint(cli.config.ckpt_path, cli.model)
    if cli.config.init_weights:
        cli.model.load_state_dict(check_checkpoint(cli.config.init_weights, cli.model)["state_dict"])
    if cli.config.compile:
        cli.model.compile()  # the forward pass only: loss, metrics and logging stay eager
    if cli.trainer.is_global_zero:
        print(describe_run(cli.trainer), flush=True)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    return cli.trainer.checkpoint_callback.best_model_path if cli.trainer.checkpoint_callback else ""


def discard_failed_run(trainer: Trainer) -> None:
    """Remove the folder of a run that failed before ending an epoch and saved no checkpoint: nothing in it to keep."""
    for logger in trainer.loggers if trainer.current_epoch == 0 else []:
        if isinstance(logger, ReservedRunFolder) and logger.reserved and not any(Path(logger.log_dir).rglob("*.ckpt")):
            logger.discard()


def report_interrupted(stop: RunInterrupted, trainer: Trainer, args: list[str]) -> int:
    """Say that the run was interrupted, where its last.ckpt is and the command that resumes it; returns 130."""
    if not trainer.is_global_zero:
        return 130
    where = f"interrupted at epoch {stop.epoch}, step {stop.step}"
    if not stop.checkpoint:
        print(f"{where}: no last.ckpt to resume from (--trainer.enable_checkpointing false)", file=sys.stderr)
        return 130
    previous = ["", *args[:-1]]
    kept = [arg for arg, before in zip(args, previous, strict=True) if "--ckpt_path" not in (arg.split("=")[0], before)]
    command = shlex.join(["python", sys.argv[0], *kept, "--ckpt_path", relative(trainer.log_dir)])
    saved = "written at this step" if stop.saved_now else "of the last epoch"
    print(f"{where}: last.ckpt {saved}: {relative(stop.checkpoint)}; resume with: {command}", file=sys.stderr)
    return 130


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


def main() -> int:
    """Parse the options, fit, test the best checkpoint and print a summary; returns the exit code."""
    given = sys.argv[1:]
    # Rewritten in place, not passed as args: Lightning's DDP launcher starts the other ranks with sys.argv.
    sys.argv[1:] = expand_short_flags(sys.argv[1:])
    cli = None
    try:
        cli = build_cli()
        trainer = cli.trainer
        best = fit(cli)
        tested = tested_checkpoint(trainer, best)
        # verbose=False: Lightning's table would print raw float32 values; print_summary rounds them.
        with lightning_messages_dropped(r"^Restoring states from the checkpoint", r"^Loaded model weights from"):
            trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=tested, verbose=False)
    except RunInterrupted as stop:
        return report_interrupted(stop, cli.trainer, given)
    except (KeyboardInterrupt, SystemExit) as stop:
        if not isinstance(stop, KeyboardInterrupt) and not isinstance(stop.__context__, KeyboardInterrupt):
            raise  # (Lightning turns Ctrl-C outside the training steps into exit code 1)
        return report_interrupted_outside_training(cli.trainer if cli is not None else None)
    except USER_ERRORS as err:
        if cli is not None:
            discard_failed_run(cli.trainer)
        return report(err)
    except RuntimeError as err:  # under DDP: another process ended, and said why
        return stopped_code(err)
    run_dir = trainer.log_dir  # every rank must ask: under DDP it is broadcast from rank 0
    if trainer.is_global_zero:
        print_summary(trainer, run_dir, best, tested)
    return 0


def run(command: Callable[[], int] = main) -> int:
    """``command`` (``main``), then the process group torn down: left to interpreter shutdown, gloo can abort."""
    try:
        return command()
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(run())
