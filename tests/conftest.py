"""Shared fixtures: fake datasets on disk and a runner for scripts/fit.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from torchvision.datasets import cifar

from tests.fake_data import write_cifar, write_image_folder, write_mnist

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "scripts" / "fit.py"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Options that keep a fit on fake data short and free of worker processes.
QUICK = ["--max_epochs", "1", "--data.num_workers", "0", "--data.batch_size", "32"]


def run_script(script: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python SCRIPT ARGS`` in ``cwd`` as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_fit(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python scripts/fit.py ARGS`` in ``cwd`` as a user would."""
    return run_script(FIT, *args, cwd=cwd, timeout=timeout)


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    return write_mnist(tmp_path / "data")


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Fake batches cannot match torchvision's md5 sums: only that check is patched (files must still exist).
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())
    return tmp_path / "data"


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "images", {"train": 8})


__all__ = ["FIT", "QUICK", "ROOT", "SHARED_DATA", "run_fit", "run_script", "write_cifar"]
