"""The checkpoint a run resumes or starts from: found from what the user gave, and checked against the run's options."""

import importlib
import inspect
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser, Namespace
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import Callback

from callbacks import OptionsInCheckpoint
from callbacks.resume import OPTIONS_KEY
from cli.errors import RunError
from cli.run_folders import continue_in_its_folder, pointed_run, relative, runs_folder, versioned_logger
from datamodules.errors import first_line
from loggers.run_folder import claim_run_folder
from models.classifier import DEFAULT_STATE

# Data options that say where the data is or how it is loaded, not what it is: free to change on a resume.
LOADING_OPTIONS = {"data_dir", "download", "root", "num_workers", "pin_memory", "in_memory", "on_device"}


# Options that set how many steps the run takes: a schedule over the whole run (onecycle, cosine) is fixed by them.
LENGTH_OPTIONS = ("trainer.max_epochs", "trainer.max_steps", "trainer.accumulate_grad_batches")


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
        trainer.logger = Namespace(class_path="loggers.RunFolder", init_args=folder)
    if config.ckpt_path and config.init_weights:
        raise RunError("--ckpt_path resumes a run, --init_weights starts a new one from its weights: give one of them")
    logger = versioned_logger(config)
    if logger is not None and trainer.default_root_dir and logger.save_dir == ".":
        logger.save_dir = trainer.default_root_dir  # the logs folder's place: Lightning's loggers would ignore it
    if config.name and logger is not None:
        logger.version = config.name
        # Rank 0 only: the other processes of a DDP run start when rank 0 has claimed the folder already.
        folder = runs_folder(config, logger) / config.name
        if rank_zero_only.rank == 0 and not config.ckpt_path and not claim_run_folder(folder):
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


def class_default(class_path: str, name: str) -> Any:
    """The default of the argument ``name`` of the class at ``class_path`` (of a base class it passes it on to);
    ``inspect.Parameter.empty`` where it has none or the class cannot be imported."""
    module, _, attribute = class_path.rpartition(".")
    try:
        klass = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError):
        return inspect.Parameter.empty
    for base in klass.__mro__:
        parameter = inspect.signature(base.__init__).parameters.get(name) if "__init__" in vars(base) else None
        if parameter is not None:
            return parameter.default
    return inspect.Parameter.empty


def added_since(key: str, options: dict[str, Any]) -> bool:
    """Whether ``key`` is an option added after the run's checkpoint was written, at its default: what the run did."""
    group, _, name = key.partition(".init_args.")
    class_path = options.get(f"{group}.class_path")
    return bool(class_path and name) and class_default(class_path, name) == options[key]


def differences(stored: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """The options that differ, as ``--model.lr 0.01 (its run: 0.001)``; an option that the run's checkpoint
    predates differs only where it is given another value than its default."""
    keys = sorted(
        key
        for key in stored.keys() | options.keys()
        if stored.get(key) != options.get(key)
        and not (key not in stored and key in options and added_since(key, options))
    )
    names = {key: key.replace(".init_args", "").removesuffix(".class_path") for key in keys}
    was = {key: stored[key] if key in stored else "written before the option" for key in keys}
    return [f"--{names[key]} {options.get(key)} (its run: {was[key]})" for key in keys]


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """The training checkpoint at ``path``; a RunError in one line when it is unreadable or no such checkpoint."""
    if path.is_file() and path.stat().st_size == 0:  # torch's own error speaks of mmap and zip files
        raise RunError(f"the checkpoint {path} is empty (0 bytes): it was never written; resume from another one")
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
        stored = load_training_checkpoint(path).get(OPTIONS_KEY)
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
    checkpoint = load_training_checkpoint(path)
    stored = checkpoint.get(OPTIONS_KEY)
    if stored is None:
        return  # written before checkpoints kept their options
    differ = differences(stored, options)
    length = [key for key in LENGTH_OPTIONS if stored.get(key) != options.get(key)]
    whole_run_schedule = any(
        key in state for state in checkpoint.get("lr_schedulers", []) for key in ("total_steps", "T_max")
    )
    run = run_label(path)
    if length and whole_run_schedule:
        epochs = stored.get("trainer.max_epochs")
        more = max_epochs - epochs if max_epochs and epochs and max_epochs > epochs else "N"
        raise RunError(
            f"{', '.join(differ)}: the learning-rate schedule of {run} was made for its {counted(epochs, 'epoch')} and "
            f"ends there; resume it with its own length, or train on in a new run from its weights: "
            f"--init_weights {run} --max_epochs {more}"
        )
    differ = [line for line in differ if not any(f"--{key} " in line for key in LENGTH_OPTIONS)]
    if differ:
        raise RunError(
            f"{relative(path)} was written with other options: {', '.join(differ[:3])}: give the options of the run "
            "that wrote it (--config with its config.yaml), or start a new run from its weights with --init_weights"
        )


def counted(number: int, thing: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{number} {thing}{'' if number == 1 else 's'}"


def run_label(path: Path) -> str:
    """How a checkpoint's run is named to the user: its run folder, or the file where it lies in none."""
    return relative(path.parent.parent) if path.parent.name == "checkpoints" else relative(path)


def check_unfinished(checkpoint: dict[str, Any], path: Path, max_epochs: int | None, max_steps: int | None) -> None:
    """Refuse to resume a run that has trained its ``max_epochs`` (or ``max_steps``) already: it would only be tested
    again, over its test_metrics.json and with a second test point in its logs. ``checkpoint`` is the one at
    ``path``, loaded already (``check_checkpoint``)."""
    epochs = checkpoint["loops"].get("fit_loop", {}).get("epoch_progress", {}).get("total", {}).get("processed", 0)
    steps = checkpoint.get("global_step", 0)
    epochs_done = max_epochs is not None and 0 <= max_epochs <= epochs
    steps_done = max_steps is not None and 0 < max_steps <= steps
    if not (epochs_done or steps_done):
        return
    run = run_label(path)
    raise RunError(
        f"{run} has finished its training ({counted(epochs, 'epoch')}, {counted(steps, 'step')}), and was tested: "
        f"nothing to resume; train it longer in a new run from its weights: --init_weights {run} --max_epochs N"
    )


def check_checkpoint(path: str, model: LightningModule) -> dict[str, Any]:
    """The checkpoint at ``path``; fails in one line, before training, when it holds another model's weights.

    Buffers added since it was written (``DEFAULT_STATE``: the temperature) get the value that means "as then".
    """
    checkpoint = load_training_checkpoint(Path(path))
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    for name, value in DEFAULT_STATE.items():
        if name in expected:
            checkpoint["state_dict"].setdefault(name, value.clone())
    found = {name: tuple(value.shape) for name, value in checkpoint["state_dict"].items()}
    if found != expected:
        differ = sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))
        raise RunError(
            f"the checkpoint {path} holds another model than this run's {type(model).__name__} "
            f"({len(differ)} weights differ, e.g. {differ[0]}): give the options of the run that wrote it, "
            "e.g. --config with its config.yaml"
        )
    return checkpoint
