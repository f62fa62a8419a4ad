"""Run folders: where a run's logger keeps them, the prefix of their names, the one a command points at."""

import os
import re
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch import Trainer

from loggers import ReservedRunFolder


def relative(path: str | os.PathLike) -> str:
    """``path`` relative to the current folder where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


def run_prefix(config: Namespace) -> str:
    """The start of the run folders' names: the data and the model, e.g. ``digits-cnn``."""
    names = [str(config[key].class_path).rpartition(".")[2] for key in ("data", "model")]
    return "-".join(re.sub(r"[^a-z0-9]+", "", name.lower()) or "run" for name in names)


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


def continue_in_its_folder(config: Namespace, checkpoint: Path) -> None:
    """Point the logger at the run folder that holds ``checkpoint``, when it is one of its runs."""
    logger = versioned_logger(config)
    if logger is None or logger.version is not None or config.checkpoint.dirpath:
        return
    run = checkpoint.resolve().parent.parent
    if checkpoint.parent.name == "checkpoints" and run.parent == runs_folder(config, logger).resolve():
        logger.version = run.name


def discard_failed_run(trainer: Trainer) -> bool:
    """Remove the folder of a run that failed before ending an epoch and saved no checkpoint: nothing in it to keep.
    Returns whether it did."""
    discarded = False
    for logger in trainer.loggers if trainer.current_epoch == 0 else []:
        if isinstance(logger, ReservedRunFolder) and logger.reserved and not any(Path(logger.log_dir).rglob("*.ckpt")):
            logger.discard()
            discarded = True
    return discarded
