"""What the commands after training share (test, predict, export, quantize): a checkpoint's model and data, and the
data's batches."""

import argparse
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch import Trainer
from torch import Tensor

from callbacks.resume import PRECISION_KEY
from cli.errors import CommandError
from cli.run_folders import relative
from datamodules import ClassificationDataModule
from datamodules.names import shown_name
from models import ImageClassifier
from models.tta import TTAName

CKPT_HELP = (
    "Checkpoint written by scripts/fit.py, such as lightning_logs/mnist-mlp-1/checkpoints/last.ckpt, or a run's folder "
    "or name (mnist-mlp-1): its best checkpoint (its calibrated copy where there is one), else its last.ckpt."
)
RUNS = Path("lightning_logs")  # where a run given by name is looked for, as scripts/fit.py keeps them


@dataclass
class Checkpoint:
    """A checkpoint of scripts/fit.py: the model (eval mode, CPU), its data's options and preprocessing."""

    path: Path
    model: ImageClassifier
    data_config: dict[str, Any] | None  # {"class_path": ..., "init_args": ...} of the datamodule it was trained on
    preprocessing: dict[str, Any]  # ClassificationDataModule.state_dict(): class_names, input_shape, mean, std
    precision: str = "32-true"  # the Trainer's in training


def import_class(class_path: str) -> Any:
    """The object named by an import path such as ``models.MLP`` or ``my_nets.TinyNet`` (from the current folder)."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise CommandError(
            f"cannot import {class_path}, the checkpoint's model ({err}): run the command in the folder that holds "
            "its file, as for training"
        ) from None


def checkpoint_path(value: str | Path, calibrated: bool = True) -> Path:
    """The checkpoint ``value`` names: a .ckpt file, or a run's folder or name (in ``lightning_logs``): its best
    checkpoint (its calibrated copy where there is one and ``calibrated``), else its last.ckpt."""
    path = Path(value)
    if path.is_file():
        return path
    if not path.is_dir() and (RUNS / path).is_dir():
        path = RUNS / path
    folder = path / "checkpoints"
    if not folder.is_dir():
        raise CommandError(
            f"no checkpoint at {value}: give a .ckpt file of a run, such as "
            "lightning_logs/mnist-mlp-1/checkpoints/last.ckpt, or a run's folder or name"
        )
    best = sorted(p for p in folder.glob("best-*.ckpt") if not p.stem.endswith("-calibrated"))
    if len(best) > 1:
        raise CommandError(f"{relative(folder)} holds {len(best)} best checkpoints: give the .ckpt file")
    chosen = best[0] if best else folder / "last.ckpt"
    if calibrated and chosen.with_name(f"{chosen.stem}-calibrated.ckpt").is_file():
        chosen = chosen.with_name(f"{chosen.stem}-calibrated.ckpt")
    if not chosen.is_file():
        raise CommandError(f"{relative(folder)} holds no best-*.ckpt or last.ckpt: give a .ckpt file")
    return chosen


def load_checkpoint(value: str | Path) -> Checkpoint:
    """Read a checkpoint of scripts/fit.py (a file, or a run's, see ``checkpoint_path``): any ImageClassifier subclass,
    rebuilt from its own hyperparameters."""
    path = checkpoint_path(value)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle, zip and torch errors alike: the file is not a checkpoint
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise CommandError(f"{path} is not a readable PyTorch checkpoint ({reason})") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    data_hparams = dict(checkpoint.get("datamodule_hyper_parameters") or {}) if hparams else {}
    data_class = data_hparams.pop("_class_path", "")
    preprocessing = checkpoint.get(data_class.rpartition(".")[2]) if hparams else None
    if isinstance(preprocessing, dict):
        preprocessing = {key: value for key, value in preprocessing.items() if key != "train_batches"}  # resuming's
    if "_class_path" not in hparams or not isinstance(preprocessing, dict):
        raise CommandError(
            f"{path} holds no model class or data preprocessing: give a checkpoint written by scripts/fit.py "
            "(retrain a run from before checkpoints kept the preprocessing)"
        )
    model_class = import_class(hparams["_class_path"])
    if not (isinstance(model_class, type) and issubclass(model_class, ImageClassifier)):
        raise CommandError(f"{path} holds a {hparams['_class_path']}, not an ImageClassifier")
    model = model_class.load_from_checkpoint(path, map_location="cpu")
    data_hparams.pop("_instantiator", None)
    data_config = {"class_path": data_class, "init_args": data_hparams}
    precision = checkpoint.get(PRECISION_KEY, "32-true")  # checkpoints written before it was kept: float32
    return Checkpoint(path, model.eval(), data_config, preprocessing, precision)


def peek_checkpoint(args: list[str]) -> Checkpoint | None:
    """The checkpoint named by ``--ckpt_path`` in ``args``, before the full parse (which takes its defaults)."""
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--ckpt_path")
    path = peek.parse_known_args(args)[0].ckpt_path
    return load_checkpoint(path) if path else None


def add_data_arguments(parser: ArgumentParser) -> None:
    """``--data`` and its options, as in scripts/fit.py; the default is the checkpoint's own datamodule."""
    parser.add_subclass_arguments(
        ClassificationDataModule,
        "data",
        required=False,
        help="The data, as in scripts/fit.py; default: the datamodule the checkpoint was trained on, with its "
        "options, any of which can be changed (--data.data_dir DIR), or another one (--data ImageFolder "
        "--data.root DIR). Images are normalized with the checkpoint's statistics.",
    )


def add_tta_argument(parser: ArgumentParser) -> None:
    """``--tta``, which overrides the test-time augmentation the checkpoint's model was trained with."""
    parser.add_argument(
        "--tta",
        type=TTAName | None,
        default=None,
        help="Test-time augmentation: none, flip or flip_translate (see --model.tta of scripts/fit.py); "
        "default: the checkpoint's.",
    )


def add_precision_argument(parser: ArgumentParser) -> None:
    """``--precision``, which overrides the precision the checkpoint's model was trained in."""
    parser.add_argument(
        "--precision",
        type=str | None,
        default=None,
        help="Precision of the forward passes, as Lightning's Trainer takes it (32-true, bf16-mixed, 16-mixed); "
        "default: the checkpoint's own, so that the figures are training's.",
    )


def inference_precision(checkpoint: Checkpoint, asked: str | None) -> str:
    """``asked``, else the checkpoint's training precision (float32 in place of float16, which needs a GPU)."""
    if asked is not None:
        return asked
    float16 = checkpoint.precision in ("16-mixed", "16", "16-true")
    return "32-true" if float16 and not torch.cuda.is_available() else checkpoint.precision


def inference_trainer(checkpoint: Checkpoint, config: Namespace, **options: Any) -> Trainer:
    """A one-device Trainer that runs ``checkpoint``: on ``config.accelerator``, in ``config.precision`` or else the
    precision it trained in (``inference_precision``); without logger, checkpoints, model summary or progress bar,
    unless ``options`` (any other Trainer options) say otherwise."""
    quiet = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "enable_progress_bar": False,
    }
    precision = inference_precision(checkpoint, config.precision)
    return Trainer(accelerator=config.accelerator, devices=1, precision=precision, **{**quiet, **options})


def with_tta(checkpoint: Checkpoint, tta: str | None) -> ImageClassifier:
    """The checkpoint's model, set to the test-time augmentation ``tta`` when one is given.

    Flips are refused for a model trained on digits, whatever data the command reads (image files too).
    """
    if tta is not None:
        data_class = checkpoint.data_config["class_path"].rpartition(".")[2]
        if tta != "none" and not trained_with_flips_allowed(checkpoint):
            raise CommandError(
                f"--tta {tta} averages over mirror images, and the checkpoint's model was trained on {data_class}, "
                "whose digits a mirror turns into other shapes: use --tta none"
            )
        checkpoint.model.tta = tta
    return checkpoint.model


def trained_with_flips_allowed(checkpoint: Checkpoint) -> bool:
    """Whether mirror images make sense for the checkpoint's training data (not for digits); True where its
    datamodule cannot be imported to tell."""
    module, _, name = checkpoint.data_config["class_path"].rpartition(".")
    try:
        data_class = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return True
    return getattr(data_class, "flips_allowed", True)


def parse(parser: ArgumentParser, args: list[str]) -> tuple[Namespace, Checkpoint | None]:
    """Parse ``args`` (the checkpoint's datamodule is the default ``--data``); returns the options and checkpoint.

    The checkpoint is None only where the parse stops first (``--help``, or no ``--ckpt_path``).
    """
    checkpoint = peek_checkpoint(args)
    if checkpoint is not None:
        parser.set_defaults(data=checkpoint.data_config)
    return parser.parse_args(args), checkpoint


def checked_data(datamodule: ClassificationDataModule, checkpoint: Checkpoint) -> ClassificationDataModule:
    """``datamodule`` set to normalize as the checkpoint's model was trained to, once it is known to fit the model."""
    hparams = checkpoint.model.hparams
    if tuple(datamodule.input_shape) != tuple(hparams.input_shape) or datamodule.num_classes != hparams.num_classes:
        raise CommandError(
            f"the data has {datamodule.num_classes} classes of {tuple(datamodule.input_shape)} images, the "
            f"checkpoint's model {hparams.num_classes} of {tuple(hparams.input_shape)}: "
            "give data like its training data"
        )
    trained_on = list(checkpoint.preprocessing["class_names"])
    if list(datamodule.class_names) != trained_on:
        raise CommandError(
            f"the data's classes ({listed(datamodule.class_names)}) are not those the checkpoint's model was trained "
            f"on ({listed(trained_on)}): give data with its classes, named and ordered as in its training data"
        )
    datamodule.load_state_dict(checkpoint.preprocessing)
    return datamodule


def listed(names: list[str], most: int = 12) -> str:
    """``names`` joined by commas, the first ``most`` of a longer list and how many more."""
    shown = ", ".join(map(shown_name, names[:most]))
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def data_from(config: Namespace, parser: ArgumentParser, checkpoint: Checkpoint) -> ClassificationDataModule:
    """The ``--data`` datamodule of parsed options, checked against the checkpoint and set to its preprocessing."""
    if config.get("data") is None:
        raise CommandError("the checkpoint names no datamodule: give one with --data")
    return checked_data(parser.instantiate_classes(config).data, checkpoint)


def batches(datamodule: ClassificationDataModule, stage: str = "test") -> Iterator[tuple[Tensor, Tensor]]:
    """The model inputs (normalized, never augmented) and labels of the test split, or of the training part."""
    datamodule.prepare_data()
    datamodule.setup(stage)
    loader = datamodule.test_dataloader() if stage == "test" else datamodule.train_dataloader()
    for images, labels in loader:
        yield datamodule.preprocess(images, train=False), labels
