"""Shared fixtures: fake datasets on disk, a runner for the scripts, and a checkpoint trained on fake MNIST."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torchvision import datasets
from torchvision.datasets import cifar

from tests.fake_data import write_cifar, write_image_folder, write_mnist, write_png_folder

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "scripts" / "fit.py"
SHARED_DATA = ROOT.parent / "shared" / "data"

# Options that keep a fit on fake data short and free of worker processes.
QUICK = ["--max_epochs", "1", "--data.num_workers", "0", "--data.batch_size", "32"]


def run_script(
    name: str, *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``python scripts/<name>.py ARGS`` in ``cwd`` as a user would, with ``env`` added to the environment."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "120", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_fit(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python scripts/fit.py ARGS`` in ``cwd`` as a user would."""
    return run_script("fit", *args, cwd=cwd, timeout=timeout)


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


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The command failed with one ``error:`` line that holds ``fragments``, and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(fragment in last for fragment in fragments), result.stderr


@pytest.fixture(scope="session")
def mnist_mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a small MLP trained for one epoch on fake MNIST (shared by the tests after training)."""
    cwd = tmp_path_factory.mktemp("mnist_mlp")
    data = write_mnist(cwd / "data")
    result = run_fit(
        "--data.data_dir", str(data), "--data.download", "false", "--model.hidden_sizes", "[64]", *QUICK, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return next((cwd / "lightning_logs" / "mnist-mlp-1" / "checkpoints").glob("best-*.ckpt"))


@pytest.fixture(scope="session")
def mnist_pngs(mnist_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake MNIST test set of the ``mnist_mlp`` checkpoint as grey 28x28 PNG files in class folders."""
    test = datasets.MNIST(str(mnist_mlp.parents[3] / "data"), train=False)
    root = tmp_path_factory.mktemp("mnist_pngs")
    return write_png_folder(root, test.data.numpy(), test.targets.tolist(), test.classes)


def fit_accuracy(checkpoint: Path) -> float:
    """The test accuracy scripts/fit.py wrote for its run."""
    return json.loads((checkpoint.parents[1] / "test_metrics.json").read_text())["test/acc"]


__all__ = [
    "FIT",
    "QUICK",
    "ROOT",
    "SHARED_DATA",
    "assert_user_error",
    "fit_accuracy",
    "run_fit",
    "run_script",
    "write_cifar",
]
