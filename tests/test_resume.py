"""Nothing lost: resuming after kill -9, checkpoints that survive a crash or a full disk, runs that never collide."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import FIT, run_fit

KILLED = '''
import errno, os, signal
import lightning.fabric.plugins.io.torch_io as torch_io
from models import MLP

write_checkpoint = torch_io._atomic_save  # what every checkpoint save ends in
saves = 0


def failing_write(checkpoint, path):
    """Write checkpoint number $FAIL_AT_SAVE only in part, then die (FAILURE=kill) or find the disk full."""
    global saves
    saves += 1
    if saves < int(os.environ["FAIL_AT_SAVE"]):
        return write_checkpoint(checkpoint, path)
    with open(path, "wb") as file:
        file.write(b"the first bytes of a checkpoint")
    if os.environ.get("FAILURE") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


if "FAIL_AT_SAVE" in os.environ:
    torch_io._atomic_save = failing_write


class Killed(MLP):
    """The MLP, killed with SIGKILL (as by kill -9) after training step $KILL_AT_STEP."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step == int(os.environ.get("KILL_AT_STEP", -1)):
            os.kill(os.getpid(), signal.SIGKILL)
'''

# Digits with batch 32: 40 training steps an epoch. Dropout and the augmentations make the result depend on the
# random generators.
RUN = [
    "--model", "killed.Killed", "--model.dropout", "0.3", "--data", "Digits", "--data.batch_size", "32",
    "--data.augment", "crop", "--data.cutout", "2", "--data.mixup_alpha", "0.2", "--data.cutmix_alpha", "1",
    "--max_epochs", "3", "--seed", "7", "--trainer.deterministic", "true", "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def fit(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    (cwd / "killed.py").write_text(KILLED)
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", **env}
    return subprocess.run(
        [sys.executable, str(FIT), *RUN, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def test_killed_twice_mid_epoch_then_resumed_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    periodic = ["--checkpoint.every_n_train_steps", "20"]
    assert fit(tmp_path, *periodic).returncode == 0
    uninterrupted = json.loads((tmp_path / "lightning_logs/version_0/test_metrics.json").read_text())

    run = tmp_path / "lightning_logs/version_1"
    assert fit(tmp_path, *periodic, KILL_AT_STEP="75").returncode == -9  # epoch 1; last saved at step 60
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 60
    # Resumed from the file by its path, then killed again in epoch 2 (last saved at step 100)...
    killed = fit(tmp_path, *periodic, "--ckpt_path", str(run / "checkpoints/last.ckpt"), KILL_AT_STEP="110")
    assert killed.returncode == -9
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 100
    # ... and resumed again as the newest last.ckpt: it completes in the same folder.
    resumed = fit(tmp_path, *periodic, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert "not resumable" not in resumed.stderr

    assert sorted(path.name for path in (tmp_path / "lightning_logs").iterdir()) == ["version_0", "version_1"]
    for name in ("config.yaml", "config-resume-1.yaml", "config-resume-2.yaml", "test_metrics.json"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yaml").read_text())["ckpt_path"] is None
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert Path(metrics.pop("checkpoint")).name == Path(uninterrupted.pop("checkpoint")).name
    assert metrics == uninterrupted  # same weights, same test results: optimizer, schedule, RNG, data order


@pytest.mark.parametrize("failure", ["disk_full", "kill"])
def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path: Path, failure: str) -> None:
    run = tmp_path / "lightning_logs/version_0"
    # Saves: epoch 0 best, epoch 0 last, then epoch 1's first one fails part-way.
    result = fit(tmp_path, FAIL_AT_SAVE="3", FAILURE=failure)
    if failure == "kill":
        assert result.returncode == -9
    else:
        assert result.returncode == 1 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no space left on the disk" in errors[0], result.stderr
        assert "resume with --ckpt_path last" in errors[0]
        assert not list((run / "checkpoints").glob(".*.part")), "the partial file is removed"
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=False)
    assert last["epoch"] == 0 and last["global_step"] == 40
    assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))

    resumed = fit(tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "test_metrics.json").read_text())["test/acc"] > 0.5


def test_runs_started_together_get_folders_of_their_own(tmp_path: Path) -> None:
    args = [sys.executable, str(FIT), "--data", "Digits", "--max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [
        subprocess.Popen([*args, "--seed", str(seed)], cwd=tmp_path, env=env, stderr=subprocess.PIPE) for seed in (1, 2)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    folders = sorted((tmp_path / "lightning_logs").iterdir())
    assert [folder.name for folder in folders] == ["version_0", "version_1"]
    seeds = sorted(yaml.safe_load((folder / "config.yaml").read_text())["seed_everything"] for folder in folders)
    assert seeds == [1, 2]
    for folder in folders:
        assert Path(json.loads((folder / "test_metrics.json").read_text())["checkpoint"]).parent.parent == Path(
            ".", "lightning_logs", folder.name
        )
        assert len(list((folder / "checkpoints").glob("best-*.ckpt"))) == 1


def test_a_second_run_into_a_run_folder_stops_before_touching_it(tmp_path: Path) -> None:
    args = ["--data", "Digits", "--max_epochs", "1", "--trainer.logger.init_args.version", "0"]
    assert run_fit(*args, cwd=tmp_path).returncode == 0
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    again = run_fit(*args, cwd=tmp_path)
    assert again.returncode == 1
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "holds another run (its config.yaml)" in errors[0], again.stderr
    assert {path: path.read_bytes() for path in before} == before  # (TensorBoard may have opened an events file)
