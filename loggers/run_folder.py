"""Run folders with readable names (``digits-cnn-3``) that two runs never share, and a logger that only makes one."""

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def reserve_run_folder(root: Path, prefix: str) -> str:
    """Create ``root/PREFIX-N`` with the first ``N`` (from 1) above those taken; returns its name.

    The folder is created with one ``mkdir``, which fails when another run created it first: two runs
    started together never get the same folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    taken = re.compile(rf"{re.escape(prefix)}-(\d+)")
    numbers = [int(match[1]) for path in root.iterdir() if (match := taken.fullmatch(path.name))]
    number = max(numbers, default=0) + 1
    while True:
        try:
            (root / f"{prefix}-{number}").mkdir()
            return f"{prefix}-{number}"
        except FileExistsError:
            number += 1


# File descriptors of the named run folders this process holds locked, for as long as it lives (see claim_run_folder).
_CLAIMED: dict[Path, int] = {}


def claim_run_folder(folder: Path) -> bool:
    """Make ``folder`` this run's, for a run named by the user (``--name``); False where another run has it.

    The folder is created with one ``mkdir`` and locked (``flock`` on the folder itself) for as long as
    this process lives, so two runs started together with the same name never share it. A folder that
    no live process holds and where no epoch ended (no checkpoint, no ``metrics.csv``) was left by a
    run that failed or was killed before it saved anything: it is emptied and taken over. Where the
    file system has no locks, an existing folder is another run's.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        saved = any(folder.rglob("*.ckpt")) or (folder / "metrics.csv").exists()
        if saved or not _lock(folder):
            return False
        for path in folder.iterdir():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return True
    return _lock(folder) is not False


def _lock(folder: Path) -> bool | None:
    """Lock ``folder`` for as long as this process lives: False where another live process holds it, None where
    the file system (or the platform: Windows has no ``fcntl``) has no such locks."""
    try:
        import fcntl
    except ImportError:
        return None
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    except OSError:  # no locks on this file system (some network file systems)
        os.close(descriptor)
        return None
    _CLAIMED[folder.resolve()] = descriptor
    return True


class ReservedRunFolder:
    """A logger's version folder named ``PREFIX-N`` (``run-1``, ``run-2``, ...; scripts/fit.py sets ``folder_prefix``
    to the data and model, e.g. ``digits-cnn``), created by the global-rank-0 process the moment it is picked.

    Lightning's loggers take one more than the highest ``version_N`` and create that folder only when
    they first write, so two runs started together took the same folder. The other ranks use rank 0's
    folder (Lightning broadcasts it). A version given by name (``version="my-run"``) is used as it is;
    scripts/fit.py claims its folder first (``claim_run_folder``).
    """

    folder_prefix = "run"
    numbered = False  # whether this run created its numbered folder
    made_root = False  # whether it created the folder of the runs too

    @property
    def reserved(self) -> bool:
        """Whether the run folder is this run's own: numbered and created by it, or claimed by name (see discard)."""
        if self.numbered or getattr(self, "_version", None) is None:  # (asking log_dir would pick a folder)
            return self.numbered
        return Path(self.log_dir).resolve() in _CLAIMED

    def _get_next_version(self) -> int | str:
        if rank_zero_only.rank != 0 or "://" in str(self.root_dir):
            return super()._get_next_version()
        made_root = not Path(self.root_dir).exists()
        name = reserve_run_folder(Path(self.root_dir), self.folder_prefix)
        self.numbered, self.made_root = True, made_root
        return name

    def discard(self) -> None:
        """Remove the folder this run created (for a run that failed before it saved anything worth keeping)."""
        if not self.reserved:
            return
        experiment = getattr(self, "_experiment", None)
        if experiment is not None and hasattr(experiment, "close"):
            experiment.close()  # TensorBoard's writer holds its events file open
        shutil.rmtree(self.log_dir, ignore_errors=True)
        if self.made_root:
            with contextlib.suppress(OSError):  # not empty: another run is in it now
                Path(self.root_dir).rmdir()


class RunLogger(ReservedRunFolder, TensorBoardLogger):
    """TensorBoardLogger whose run folders are named ``PREFIX-N`` and never shared; every option is its."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # Lightning adds "epoch" to every call: as train/epoch it joins the training curves instead of
        # being a group of its own that sorts, and opens, first. Not with the test's metrics: the test after
        # training comes at epoch max_epochs, one above the last epoch trained.
        testing = any(name.startswith("test/") for name in metrics)
        renamed = {("train/epoch" if name == "epoch" else name): value for name, value in metrics.items()}
        super().log_metrics(
            {name: value for name, value in renamed.items() if not (testing and name == "train/epoch")}, step
        )


class RunFolder(ReservedRunFolder, CSVLogger):
    """A logger that logs nothing: it only gives the run its folder (checkpoints, ``config.yaml``,
    ``test_metrics.json``), named and kept apart as RunLogger's are. scripts/fit.py puts it in place of
    ``--trainer.logger false``, so that no file lands outside a run folder.
    """

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log nothing."""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Log nothing."""

    def save(self) -> None:
        """Write nothing."""
