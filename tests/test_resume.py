"""Nothing lost: resuming after kill -9 or Ctrl-C, checkpoints that survive a crash or a full disk, runs that never
collide."""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from callbacks import ProgressLog, StopOnInterrupt
from cli.resume import differences
from tests.conftest import FIT, run_fit, run_script

KILLED = '''
import errno, os, signal, tempfile
import torch
from models import MLP

write = torch.save  # what every checkpoint save ends in, into the .part file beside the checkpoint
saves = 0


def failing_write(checkpoint, file, *args, **kwargs):
    """Write checkpoint number $FAIL_AT_SAVE only in part, then die (FAILURE=kill) or find the disk full."""
    global saves
    if not str(getattr(file, "name", "")).endswith(".part"):
        return write(checkpoint, file, *args, **kwargs)
    saves += 1
    if saves < int(os.environ["FAIL_AT_SAVE"]):
        return write(checkpoint, file, *args, **kwargs)
    file.write(b"the first bytes of a checkpoint")
    file.flush()
    if os.environ.get("FAILURE") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), file.name)


def full_temporary_folder(*args, **kwargs):
    """$TMPDIR_FULL: a $TMPDIR with no room left."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tempfile.gettempdir())


if "FAIL_AT_SAVE" in os.environ:
    torch.save = failing_write
if "TMPDIR_FULL" in os.environ:
    tempfile.mkstemp = tempfile.mkdtemp = tempfile.NamedTemporaryFile = full_temporary_folder
if "LOGS_FULL" in os.environ:  # the disk of the logs full from the start: TensorBoard's writer thread fails
    from tensorboard.summary.writer import record_writer

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    record_writer.RecordWriter.write = full_disk


class Killed(MLP):
    """The MLP, killed with SIGKILL (as by kill -9) after training step $KILL_AT_STEP, or sent SIGINT (as by
    Ctrl-C) after step $INTERRUPT_AT_STEP, twice with $INTERRUPT_TWICE."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step == int(os.environ.get("KILL_AT_STEP", -1)):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.global_step == int(os.environ.get("INTERRUPT_AT_STEP", -1)):
            os.kill(os.getpid(), signal.SIGINT)
            if "INTERRUPT_TWICE" in os.environ:
                os.kill(os.getpid(), signal.SIGINT)
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


def test_killed_then_interrupted_mid_epoch_then_resumed_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    # With the weight average, which a checkpoint holds apart from the live weights, and resumes exactly too; and
    # with the balanced sampler (its draws), balanced class weights deferred to epoch 1, the best by val/bacc.
    periodic = ["--checkpoint.every_n_train_steps", "20", "--model.ema_decay", "0.9", "--data.sampler", "balanced"]
    periodic += ["--model.class_weights", "balanced", "--model.class_weights_from_epoch", "1"]
    periodic += ["--checkpoint.monitor", "val/bacc"]
    run = tmp_path / "lightning_logs/digits-killed-1"
    assert fit(tmp_path, *periodic, KILL_AT_STEP="75").returncode == -9  # epoch 1; last saved at step 60
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 60
    # A newer run with the same options, never interrupted: the one to compare with, and the newest last.ckpt.
    whole = fit(tmp_path, *periodic)
    assert whole.returncode == 0 and "will override existing callbacks" not in whole.stdout + whole.stderr
    newer = tmp_path / "lightning_logs/digits-killed-2"
    uninterrupted = json.loads((newer / "test_metrics.json").read_text())
    # The final test of fit.py and scripts/test.py measure the same weights: the best checkpoint's average.
    best = Path(uninterrupted["checkpoint"])
    assert best.name.startswith("best-")
    tested = run_script("test", "--ckpt_path", str(best), "--json", "test.json", cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr
    again = json.loads((tmp_path / "test.json").read_text())
    assert again["test/acc"] == uninterrupted["test/acc"]
    assert again["test/loss"] == pytest.approx(uninterrupted["test/loss"], rel=1e-6)  # the live weights' differs
    saved = torch.load(tmp_path / best, weights_only=False)
    live, average = saved["current_model_state"], saved["state_dict"]
    assert any(not torch.equal(live[name], average[name]) for name in average)
    newer_files = sorted(newer.rglob("*"))

    # The run whose config.yaml is given is resumed, not the newest; Ctrl-C in epoch 2 stops it after that step,
    # with last.ckpt written there, and says how to resume.
    mlflow = ["--config", str(FIT.parents[1] / "configs/logger/mlflow.yaml")]
    interrupted = fit(
        tmp_path, "--config", str(run / "config.yaml"), *mlflow, "--ckpt_path", "last", INTERRUPT_AT_STEP="110"
    )
    assert interrupted.returncode == 130, interrupted.stderr
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (logged,) = client.search_runs([client.get_experiment_by_name("lightning_logs").experiment_id])
    assert logged.info.status == "KILLED"  # not FAILED: the user stopped it, and it resumes
    assert "run/config.yaml" in {item.path for item in client.list_artifacts(logged.info.run_id, "run")}
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 111
    said = interrupted.stderr.strip().splitlines()[-1]
    prefix = "interrupted at epoch 2, step 111: last.ckpt written at this step: lightning_logs/digits-killed-1/"
    assert said.startswith(prefix) and "; resume with: python " in said, interrupted.stderr
    command = shlex.split(said.partition("; resume with: ")[2])
    assert command[-2:] == ["--ckpt_path", "lightning_logs/digits-killed-1"]
    environment = {**os.environ, "PYTHONWARNINGS": ""}  # the warnings a user sees
    resumed = subprocess.run(
        [sys.executable, *command[1:]], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert ", resuming lightning_logs/digits-killed-1/checkpoints/last.ckpt\n" in resumed.stdout  # the start line
    for noise in ("Restoring states", "Restored all states", "exists and is not empty", "Seed set"):
        assert noise not in resumed.stdout + resumed.stderr, noise

    assert sorted(newer.rglob("*")) == newer_files  # the newer run's folder is left alone
    for name in ("config.yaml", "config-resume-1.yaml", "config-resume-2.yaml", "test_metrics.json"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yaml").read_text())["ckpt_path"] is None
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert Path(metrics.pop("checkpoint")).name == Path(uninterrupted.pop("checkpoint")).name
    assert metrics.pop("time_s") > 0 and uninterrupted.pop("time_s") > 0  # the seconds of each test: not the same
    assert metrics == uninterrupted  # same weights, same test results: optimizer, schedule, RNG, data order
    # metrics.csv: each epoch once, though written by three processes; the last validation as uninterrupted.
    rows = [list(csv.DictReader(open(folder / "metrics.csv"))) for folder in (newer, run)]
    assert [row["epoch"] for row in rows[1]] == ["0", "1", "2"] and rows[1][2]["val/acc"] == rows[0][2]["val/acc"]
    starts = json.loads((run / "provenance.json").read_text())  # one entry per start
    assert [Path(start["resumed_from"] or "none").name for start in starts] == ["none", "last.ckpt", "last.ckpt"]


def test_a_second_ctrl_c_stops_at_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    stop = StopOnInterrupt()
    stop._training = True
    stop._handle(signal.SIGINT, None)
    assert stop.requested  # the first one only asks to stop after the step
    with pytest.raises(SystemExit) as exited:
        stop._handle(signal.SIGINT, None)
    assert exited.value.code == 130 and "stopped at once" in capsys.readouterr().err


@pytest.mark.parametrize("failure", ["disk_full", "kill"])
def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path: Path, failure: str) -> None:
    run = tmp_path / "lightning_logs/digits-killed-1"
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

    # With no room left in $TMPDIR: checkpoints are written beside their target only.
    resumed = fit(tmp_path, "--ckpt_path", "last", TMPDIR_FULL="1")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "test_metrics.json").read_text())["test/acc"] > 0.5

    if failure == "disk_full":  # a new run on a full disk: one line, which speaks of no checkpoint, no traceback
        full = fit(tmp_path, "--seed", "8", LOGS_FULL="1")
        assert full.returncode == 1 and full.stderr.startswith("error: "), full.stderr
        (line,) = full.stderr.splitlines()
        assert "no space left on the disk, before the run's first checkpoint: free some space" in line


def test_runs_started_together_get_folders_of_their_own(tmp_path: Path) -> None:
    args = [sys.executable, str(FIT), "--data", "Digits", "--max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    runs = [
        subprocess.Popen([*args, "--seed", str(seed)], cwd=tmp_path, env=env, stderr=subprocess.PIPE) for seed in (1, 2)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    folders = sorted((tmp_path / "lightning_logs").iterdir())
    assert [folder.name for folder in folders] == ["digits-mlp-1", "digits-mlp-2"]
    seeds = sorted(yaml.safe_load((folder / "config.yaml").read_text())["seed_everything"] for folder in folders)
    assert seeds == [1, 2]
    for folder in folders:
        assert Path(json.loads((folder / "test_metrics.json").read_text())["checkpoint"]).parent.parent == Path(
            ".", "lightning_logs", folder.name
        )
        assert len(list((folder / "checkpoints").glob("best-*.ckpt"))) == 1


def test_a_second_run_into_a_named_run_folder_stops_before_touching_it(tmp_path: Path) -> None:
    args = ["--data", "Digits", "--max_epochs", "1", "--name", "first"]
    assert run_fit(*args, cwd=tmp_path).returncode == 0
    before = contents(tmp_path)
    again = run_fit(*args, cwd=tmp_path)
    assert again.returncode == 1
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    message = "--name first: lightning_logs/first holds another run: choose another name, or resume that run with"
    assert len(errors) == 1 and message in errors[0], again.stderr
    assert contents(tmp_path) == before
    # Its config.yaml repeats it in a new folder: the name and the folder are the run's, not its options.
    repeated = run_fit("--config", "lightning_logs/first/config.yaml", cwd=tmp_path)
    assert repeated.returncode == 0, repeated.stderr
    assert "Run folder:      lightning_logs/digits-mlp-1" in repeated.stdout
    assert {path: data for path, data in contents(tmp_path).items() if path in before} == before
    # Resuming it when it has finished would only test it again, over its figures: refused, nothing touched.
    finished = run_fit(*args, "--ckpt_path", "last", cwd=tmp_path)
    assert finished.returncode == 1 and "lightning_logs/first has finished its training (1 epoch, " in finished.stderr
    assert {path: data for path, data in contents(tmp_path).items() if path in before} == before


def test_named_runs_started_together_or_killed_before_a_checkpoint(tmp_path: Path) -> None:
    """Two runs with one name: one runs, the other stops at once, leaving nothing in its folder. A named run killed
    before its first checkpoint starts again under its name; one from --init_weights resumes as printed."""
    (tmp_path / "killed.py").write_text(KILLED)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    named = [sys.executable, str(FIT), *RUN, "--max_epochs", "1", "--name", "same"]
    together = [subprocess.Popen(named, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(run.wait(timeout=300) for run in together)
    stopped = next(run.stderr.read() for run in together if run.returncode)
    assert codes == [0, 1] and "error: --name same: lightning_logs/same holds another run" in stopped, stopped
    events = (tmp_path / "lightning_logs/same").glob("events.out.tfevents.*")
    assert len({path.name.split(".")[-2] for path in events}) == 1  # written by one process (its id), not two

    from_weights = ["--name", "k", "--init_weights", "same", "--max_epochs", "2"]
    assert fit(tmp_path, *from_weights, KILL_AT_STEP="3").returncode == -9
    # Ctrl-C twice: stopped at once, in one line that names the last.ckpt of epoch 0 and the command.
    interrupted = fit(tmp_path, *from_weights, INTERRUPT_AT_STEP="50", INTERRUPT_TWICE="1")
    assert interrupted.returncode == 130, interrupted.stderr
    said = interrupted.stderr.strip().splitlines()[-1]
    assert said.startswith("interrupted again: stopped at once: last.ckpt as last saved: lightning_logs/k/"), said
    command = shlex.split(said.partition("; resume with: ")[2])
    assert "--init_weights" not in command and command[-2:] == ["--ckpt_path", "lightning_logs/k"]
    resumed = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    provenance = json.loads((tmp_path / "lightning_logs/k/provenance.json").read_text())
    assert [Path(start["resumed_from"] or "none").name for start in provenance] == ["none", "last.ckpt"]


def test_ctrl_c_while_the_libraries_load_is_one_line(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(FIT), "--data", "Digits"]
    started = subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=subprocess.PIPE)
    maps = Path(f"/proc/{started.pid}/maps")
    while "libtorch" not in maps.read_text():  # torch is loading; it and Lightning take seconds more
        time.sleep(0.01)
    started.send_signal(signal.SIGINT)
    assert started.wait(timeout=60) == 130
    assert started.stderr.read().decode() == (
        "interrupted while loading the libraries, before the run started: nothing written\n"
    )


def contents(folder: Path) -> dict[Path, bytes | None]:
    """Every path below ``folder``, with the bytes of the files."""
    return {path: path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


def test_progress_lines_after_a_resume_in_the_middle_of_an_epoch(capsys: pytest.CaptureFixture) -> None:
    """Times and speeds count from the resume; no line within the epoch at once, nor on its last step; an epoch that
    max_steps ends early says how many steps it ran."""
    trainer = SimpleNamespace(num_training_batches=40, is_global_zero=True, max_epochs=3, current_epoch=2, world_size=1)
    trainer.lightning_module = SimpleNamespace()
    progress = ProgressLog(interval=60)
    progress._trainer = trainer
    progress.get_metrics = lambda trainer, module: {"train/loss": 0.5}
    batch, module = (torch.zeros(32, 1), torch.zeros(32)), SimpleNamespace()
    progress.on_train_start(trainer, module)  # resumed at batch 25 of epoch 2: Lightning calls no epoch start
    progress.on_train_batch_end(trainer, module, None, batch, 25)
    assert capsys.readouterr().out == ""  # the interval counts from the resume
    progress.interval = 0
    progress.on_train_batch_end(trainer, module, None, batch, 26)
    line = capsys.readouterr().out
    assert line.startswith("Epoch 2/2  27/40 steps  0:00:00  epoch ETA 0:00:0"), line
    assert " 0 samples/s" not in line
    progress.on_train_batch_end(trainer, module, None, batch, 39)
    assert capsys.readouterr().out == ""  # the last step: the epoch's own line says it
    progress.on_train_epoch_end(trainer, module)
    progress.on_train_end(trainer, module)
    assert capsys.readouterr().out.startswith("Epoch 2/2  40 steps  0:00:00  ETA 0:00:00")
    progress.on_train_epoch_start(trainer, module)  # an epoch that max_steps ends after 5 of its 40 steps
    for index in range(5):
        progress.on_train_batch_end(trainer, module, None, batch, index)
    capsys.readouterr()
    progress.on_train_epoch_end(trainer, module)
    progress.on_train_end(trainer, module)
    assert capsys.readouterr().out.startswith("Epoch 2/2  5 steps  ")


def test_an_option_added_since_a_run_was_written_differs_only_when_given_another_value_than_its_default() -> None:
    stored = {"model.class_path": "models.MLP", "model.init_args.lr": 0.001, "data.class_path": "datamodules.Digits"}
    now = {**stored, "model.init_args.class_weights": "none", "data.init_args.sampler": "shuffle"}
    assert differences(stored, now) == []
    changed = {**now, "data.init_args.sampler": "balanced", "model.init_args.lr": 0.01}
    assert differences(stored, changed) == [
        "--data.sampler balanced (its run: written before the option)",
        "--model.lr 0.01 (its run: 0.001)",
    ]
