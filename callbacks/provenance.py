"""``provenance.json``: where a run came from, to repeat it or to explain a difference."""

import json
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

PROJECT = Path(__file__).resolve().parents[1]


def git_state(folder: Path) -> dict[str, Any] | None:
    """The commit checked out in ``folder`` and whether files differ from it; None outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=10).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return None
    return {"commit": commit, "dirty": bool(changed)}


def device_names(trainer: Trainer) -> list[str]:
    """The names of the devices this process trains on (a CPU's architecture and core count for CPUs)."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return [torch.cuda.get_device_name(index) for index in trainer.device_ids]
    return [f"{device.type} ({platform.machine()}, {torch.get_num_threads()} threads)"]


def provenance(trainer: Trainer) -> dict[str, Any]:
    """The command line, the code's git commit, the versions of Python, torch, Lightning and CUDA, and the devices."""
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "git": git_state(PROJECT),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda,
        "devices": device_names(trainer),
        "processes": trainer.world_size,
        "resumed_from": trainer.ckpt_path,
    }


class SaveProvenance(Callback):
    """Write ``provenance.json`` into the run folder when training starts (the global-rank-0 process only).

    The file holds a list with one entry per start of the run: a resumed run adds its own. ``git``
    is null when the project is not a git checkout; ``cuda`` is null for a torch built without CUDA.
    """

    def __init__(self, filename: str = "provenance.json") -> None:
        self.filename = filename

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename  # collective: every rank asks
        if not trainer.is_global_zero:
            return
        starts = json.loads(path.read_text()) if path.exists() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([*starts, provenance(trainer)], indent=2) + "\n")
