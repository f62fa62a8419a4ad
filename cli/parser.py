"""scripts/fit.py's command line: LightningCLI with this project's defaults, checks before anything is built, and the
Trainer's callbacks fitted to the options."""

import importlib.util
import sys
from argparse import ArgumentError
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks import (
    ClassCounts,
    ClassificationFigures,
    EpochMetricsCSV,
    OptionsInCheckpoint,
    ProgressLog,
    RandomStateInCheckpoint,
    ReliabilityDiagram,
    RunCheckpoint,
    RunHyperparameters,
    SaveProvenance,
    SaveRunConfig,
    SaveTestMetrics,
    ShareRunFiles,
    StepLogInterval,
    StopOnInterrupt,
    StopOnNonFiniteLoss,
    TrainLRMonitor,
)
from cli.errors import RunError, parse_error
from cli.flags import expand_short_flags, given, with_default_classes
from cli.help import FIT_DESCRIPTION, FitArgumentParser
from cli.monitors import DEFAULT_FILENAME, check_monitors, settle_monitors
from cli.resume import prepare_run
from cli.run_folders import run_prefix
from datamodules import ClassificationDataModule
from loggers import ReservedRunFolder
from models import ImageClassifier

# Headings of the option groups in --help (jsonargparse would take each class docstring's first line).
GROUP_TITLES = {
    "trainer": "Lightning's Trainer (--trainer.*; the short flags above set the most used)",
    "model": "The model (--model.help NAME lists a model's options)",
    "data": "The data (--data.help NAME lists a datamodule's options)",
    "checkpoint": "Checkpoints (Lightning's ModelCheckpoint): the best by its monitor (val/acc), and last.ckpt",
    "lr_monitor": "Learning-rate logging (Lightning's LearningRateMonitor)",
    "test_metrics": "After testing: test_metrics.json and TensorBoard's HPARAMS tab",
    "figures": "Confusion matrix and misclassified images in TensorBoard, after each validation and test",
    "stop_on_nonfinite": "Stop when the training loss turns NaN or infinite",
}


class FitCLI(LightningCLI):
    """LightningCLI with this project's defaults: checkpoints by val/acc, LR logging, data-shaped models."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(TrainLRMonitor, "lr_monitor")
        parser.add_lightning_class_args(SaveTestMetrics, "test_metrics")
        parser.add_lightning_class_args(ClassificationFigures, "figures")
        parser.add_lightning_class_args(StopOnNonFiniteLoss, "stop_on_nonfinite")
        add_run_arguments(parser)
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
                "checkpoint.filename": DEFAULT_FILENAME,  # named after --checkpoint.monitor's metric (cli.monitors)
                "checkpoint.auto_insert_metric_name": False,
                "trainer.plugins": {"class_path": "loggers.AtomicCheckpointIO"},
                "trainer.max_epochs": 10,
                "trainer.benchmark": True,  # cuDNN picks its fastest kernels: every batch has the same shape
                "trainer.logger": {
                    "class_path": "loggers.RunLogger",
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
        steps_csv_for_lightning_csv(trainer.logger)
        if self.config.get("calibrate") and trainer.enable_checkpointing is False:
            raise ValueError("--calibrate writes a calibrated copy of the tested checkpoint: leave checkpointing on")
        if not validates(self.config.data.init_args):
            without_validation(self.config)
        settle_monitors(self.config, self.command_line)
        if self.config.ckpt_path and not given(self.command_line, "--init_weights"):
            self.config.init_weights = None  # from a run's config.yaml: the weights it started from, not the resume's
        prepare_run(self.config, self.parser, self.trainer_defaults["callbacks"])

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        check_monitors(self.trainer.callbacks, self.model)
        self.datamodule.augmentation  # noqa: B018  (resolved now: options that do not fit the images fail before the run)
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
        self.command_line = sys.argv[1:] if args is None else list(args)
        try:
            super().parse_arguments(parser, with_default_classes(self.command_line))
        except ArgumentError as err:
            told = parse_error(parser, err, self.command_line)
            if told is err:
                raise
            raise told from None


def add_run_arguments(parser: LightningArgumentParser) -> None:
    """The options of the run beside the Trainer's, the model's and the data's: compile, calibrate, resume, name."""
    parser.add_argument(
        "--compile",
        type=bool,
        default=False,
        help="Compile the model with torch.compile: faster steps, mostly on GPUs, after a compilation "
        "of a minute or so at the start (it needs a C++ compiler for CPUs).",
    )
    parser.add_argument(
        "--calibrate",
        type=bool,
        default=False,
        help="After training, fit a temperature to the tested checkpoint on the validation split (as "
        "scripts/calibrate.py does), write it as <checkpoint>-calibrated.ckpt beside it, and test that one: "
        "probabilities that match how often the model is right; the classes predicted stay the same.",
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


def build_cli(args: list[str] | None = None) -> FitCLI:
    """Parse ``args`` (default: ``sys.argv``; short flags such as ``--max_epochs`` too) and build the model, the
    datamodule and the Trainer."""
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
                ReliabilityDiagram(),
                SaveProvenance(),
                ShareRunFiles(),
                ClassCounts(),
                StepLogInterval(),
            ]
        },
        run=False,
        args=None if args is None else expand_short_flags(args),
        # allow_abbrev: argparse would take --trainer.max_epoch (or any prefix of an option) for the option.
        parser_kwargs={"description": FIT_DESCRIPTION, "exit_on_error": False, "allow_abbrev": False},
    )


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
    if config.get("calibrate"):
        raise ValueError(
            "--data.val_size 0 leaves no validation split to fit the temperature on: hold one out "
            "(--data.val_size 5000, or 0.1) or leave out --calibrate"
        )
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


# The package each of Lightning's loggers needs, which this project does not install (see the `test` extra).
LOGGER_PACKAGES = {
    "MLFlowLogger": "mlflow",
    "RunMLFlowLogger": "mlflow",
    "WandbLogger": "wandb",
    "CometLogger": "comet_ml",
    "NeptuneLogger": "neptune",
}


def steps_csv_for_lightning_csv(logger: Any) -> None:
    """Put ``loggers.StepCSVLogger`` (the same options) in place of Lightning's ``CSVLogger``: its file of every
    step's values was the run folder's ``metrics.csv`` (one row per epoch, ``callbacks.EpochMetricsCSV``), and
    once a run logged steps the two tables ran into one another (and the epoch table's next row failed)."""
    for each in logger if isinstance(logger, list) else [logger]:
        if str(getattr(each, "class_path", "")) == "lightning.pytorch.loggers.CSVLogger":
            each.class_path = "loggers.StepCSVLogger"


def check_logger_packages(logger: Any) -> None:
    """Fail in one line, before anything is written, when a chosen logger's package is not installed."""
    for each in logger if isinstance(logger, list) else [logger]:
        name = str(getattr(each, "class_path", "")).rpartition(".")[2]
        package = LOGGER_PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise RunError(
                f"the {name} logger needs the {package} package, which is not installed: pip install {package}"
            )
