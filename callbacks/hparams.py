"""The run's hyperparameters for every logger, and TensorBoard's HPARAMS session with the same columns for every run."""

import inspect
import os
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams as hparams_summary

from callbacks.class_counts import class_counts
from datamodules import ClassificationDataModule
from models import ImageClassifier

# Data options that say how the data is read, not what is learned: kept in hparams.yaml, not compared in HPARAMS.
LOADER_SETTINGS = (
    "num_workers",
    "pin_memory",
    "in_memory",
    "on_device",
    "folds",
    "fold",
    "data_dir",
    "download",
    "root",
)


def plain(value: Any) -> Any:
    """``value`` as YAML's and JSON's plain types: tuples as lists, class configurations as their class name."""
    if isinstance(value, dict) and "class_path" in value:
        name = str(value["class_path"]).rpartition(".")[2]
        args = ", ".join(f"{key}={plain(arg)}" for key, arg in (value.get("init_args") or {}).items())
        return f"{name}({args})"
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def own_arguments(hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` without LightningCLI's internal entries (``_class_path``, ``_instantiator``), in plain types."""
    return {key: plain(value) for key, value in hparams.items() if not key.startswith("_")}


def base_options(cls: type) -> list[str]:
    """The names of the options of ``cls.__init__``."""
    return [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "args", "kwargs")]


def run_hyperparameters(trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
    """Model, data and training options of the run, nested, in plain types: the content of ``hparams.yaml``."""
    data = trainer.datamodule
    return {
        "model": {"class": type(pl_module).__name__, **own_arguments(pl_module.hparams)},
        "data": {"class": type(data).__name__, **own_arguments(data.hparams if data is not None else {})},
        "trainer": {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "precision": str(trainer.precision),
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "gradient_clip_val": trainer.gradient_clip_val,
            "devices": trainer.world_size,
        },
        "seed": int(os.environ["PL_GLOBAL_SEED"]) if "PL_GLOBAL_SEED" in os.environ else None,
        "class_counts": class_counts(trainer),  # the training images of each class
    }


def column_value(value: Any) -> float | str:
    """A value for the HPARAMS table: floats as numbers; the rest as text (integers show as 32, not 32.000)."""
    if isinstance(value, float):
        return value
    return "-" if value is None else str(value)


def extras(options: dict[str, Any], known: list[str]) -> str:
    """The options not in ``known``, as one ``name=value`` list ("-" when none)."""
    rest = [f"{name}={value}" for name, value in sorted(options.items()) if name not in known]
    return ", ".join(rest) or "-"


def hparams_columns(hyperparameters: dict[str, Any]) -> dict[str, float | str]:
    """The HPARAMS columns of a run, the same names for every model and data set, in a fixed order.

    The options of ``ImageClassifier`` and ``ClassificationDataModule`` get a column each; those of a
    particular model or data set (the MLP's ``hidden_sizes``) share ``model_args`` and ``data_args``.
    """
    model, data, trainer = hyperparameters["model"], hyperparameters["data"], hyperparameters["trainer"]
    classifier = [name for name in base_options(ImageClassifier) if name not in ("num_classes", "input_shape")]
    # The data's own seed (of its split) goes to data_args: "seed" is the run's.
    loader = [name for name in base_options(ClassificationDataModule) if name not in (*LOADER_SETTINGS, "seed")]
    columns: dict[str, Any] = {"model": model["class"], "data": data["class"], "max_epochs": trainer["max_epochs"]}
    columns.update({name: model.get(name) for name in classifier})
    columns["model_args"] = extras(model, ["class", "num_classes", "input_shape", *classifier])
    columns.update({name: data.get(name) for name in loader})
    columns["data_args"] = extras(data, ["class", *loader, *LOADER_SETTINGS])
    columns.update({name: trainer[name] for name in ("precision", "accumulate_grad_batches", "gradient_clip_val")})
    columns["seed"] = hyperparameters["seed"]
    return {name: column_value(value) for name, value in columns.items()}


class RunHyperparameters(Callback):
    """Give every logger the run's options in plain types, and TensorBoard an HPARAMS session that compares runs.

    Lightning would log the model's and the datamodule's ``hparams`` merged: with LightningCLI's
    internal ``_class_path`` and ``_instantiator``, tuples that ``yaml.safe_load`` refuses, no model
    class and no Trainer options. Here each logger gets :func:`run_hyperparameters` instead (TensorBoard's
    and CSV's write it to ``hparams.yaml``), and TensorBoard a session whose columns are
    :func:`hparams_columns`, written when training starts (after the finders have set their values, and
    so that a run that stops early is compared too) and closed after testing; its metrics are the final
    values of the run's scalars.
    """

    logged: dict[str, Any] | None = None  # what setup gave the loggers

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # Lightning's own logging of the hyperparameters, which these replace (what save_hyperparameters(logger=False)
        # sets; the hparams stay in the checkpoints).
        pl_module._log_hyperparams = False
        if trainer.datamodule is not None:
            trainer.datamodule._log_hyperparams = False
        self.logged = run_hyperparameters(trainer, pl_module)
        for logger in trainer.loggers:
            logger.log_hyperparams(self.logged)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        hyperparameters = run_hyperparameters(trainer, pl_module)
        if hyperparameters != self.logged:  # a finder (callbacks.LRFinder) has set a value since setup
            for logger in trainer.loggers:
                logger.log_hyperparams(hyperparameters)
                if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
                    # TensorBoardLogger writes hparams.yaml once only; it was written at setup.
                    save_hparams_to_yaml(os.path.join(logger.log_dir, "hparams.yaml"), logger.hparams)
        if trainer.is_global_zero:
            for writer in self._writers(trainer):
                # The session only, no experiment summary: TensorBoard then takes the columns of all runs, shows the
                # ones whose values differ first, and the final value of every scalar as a metric (test/ first).
                # When training starts, not at setup: after the finders have set their values.
                writer.add_summary(hparams_summary(hparams_columns(hyperparameters), {})[1])

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            for writer in self._writers(trainer):
                writer.add_summary(hparams_summary({}, {})[2])  # the session's end: status success

    @staticmethod
    def _writers(trainer: Trainer) -> list[Any]:
        return [
            logger.experiment._get_file_writer() for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)
        ]
