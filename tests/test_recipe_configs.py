"""The recipes' configs take their classes' own defaults, train under DDP on 2 CPU processes, and resume a killed
run exactly."""

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cli.parser import build_cli
from tests.conftest import FIT, ROOT, run_fit
from tests.fake_data import write_image_folder, write_mnist

CLASSES = tuple(f"class{i}" for i in range(10))


@pytest.fixture(scope="module")
def recipe_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny CIFAR-10 look-alike as image folders (10 classes of 32x32 colour images, train/ and test/: 60
    and 20 images), and tiny MNIST files (300 and 100 images)."""
    root = tmp_path_factory.mktemp("recipes")
    cifar = write_image_folder(root / "cifar10-jpg", {"train": 6, "test": 2}, CLASSES, size=(32, 32))
    return {"cifar": cifar, "mnist": write_mnist(root / "data")}


def recipe_args(config: str, data: dict[str, Path], batches_per_epoch: int) -> list[str]:
    """The recipe's config on the tiny data (CIFAR-10 as image folders: the README's JPEG variant), with
    batches that make ``batches_per_epoch`` steps an epoch on one process."""
    args = ["--config", str(ROOT / "configs" / config), "--data.num_workers", "0"]
    if config.startswith("mnist"):
        args += ["--data.data_dir", str(data["mnist"]), "--data.download", "false"]
        images = 300
    else:
        args += ["--data", "ImageFolder", "--data.root", str(data["cifar"])]
        images = 60
    return [*args, "--data.batch_size", str(images // batches_per_epoch), "--trainer.enable_progress_bar", "false"]


RECIPES = sorted(path.name for path in (ROOT / "configs").glob("*.yaml") if path.name != "search_digits.yaml")


@pytest.mark.parametrize("config", RECIPES)
def test_options_a_recipe_leaves_out_are_its_classes_own_defaults(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not those of the default MLP and MNIST: Airbench94 trained at the MLP's lr 0.001, and did not learn."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        build_cli(["--config", str(ROOT / "configs" / config), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    given = yaml.safe_load((ROOT / "configs" / config).read_text())
    for key in ("model", "data"):
        module, _, name = printed[key]["class_path"].rpartition(".")
        signature = inspect.signature(getattr(importlib.import_module(module), name))
        set_by_config = given.get(key, {}).get("init_args", {})
        for option, parameter in signature.parameters.items():
            if option in set_by_config or parameter.default is inspect.Parameter.empty:
                continue
            default = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
            assert printed[key]["init_args"][option] == default, f"{key}.{option}"


AUGMENT = {"cifar10_airbench.yaml": "airbench", "cifar10_cpu.yaml": "airbench", "cifar10_resnet.yaml": "page"}
SHORTER = {"cifar10_resnet.yaml": ["--model.warmup_epochs", "0.5"]}  # a warm-up of half the 1 epoch, not 5 of 24


@pytest.mark.parametrize("config", [name for name in RECIPES if name in AUGMENT or name == "mnist_fast.yaml"])
def test_recipe_trains_one_epoch_under_ddp_on_two_cpu_processes(
    tmp_path: Path, recipe_data: dict[str, Path], config: str
) -> None:
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max_epochs", "1"]
    args = recipe_args(config, recipe_data, batches_per_epoch=6)  # 3 on each of 2 processes
    result = run_fit(*args, *ddp, *SHORTER.get(config, []), cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    (run,) = (tmp_path / "lightning_logs").iterdir()
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert Path(metrics["checkpoint"]).name == "last.ckpt"  # all the training images train: nothing validates
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3
    assert checkpoint["datamodule_hyper_parameters"]["augment"] == AUGMENT.get(config, "none")


KILLED = """
import os, signal
from models import Airbench94


class Killed(Airbench94):
    '''Airbench94, killed with SIGKILL (as by kill -9) after training step $KILL_AT_STEP.'''

    def on_train_batch_end(self, outputs, batch, batch_idx):
        super().on_train_batch_end(outputs, batch, batch_idx)
        if self.global_step == int(os.environ.get("KILL_AT_STEP", -1)):
            os.kill(os.getpid(), signal.SIGKILL)
"""


def test_airbench_recipe_killed_mid_run_resumes_to_the_uninterrupted_result(
    tmp_path: Path, recipe_data: dict[str, Path]
) -> None:
    """The lookahead average, the whitening and the per-group schedule come back from the checkpoint exactly,
    in bfloat16 mixed precision. On cifar10_cpu.yaml: cifar10_airbench.yaml is the same model and data in
    float32, and mnist_fast.yaml the same model on MNIST's files (which other resume tests read)."""
    (tmp_path / "killed.py").write_text(KILLED)
    args = [*recipe_args("cifar10_cpu.yaml", recipe_data, batches_per_epoch=5), "--model", "killed.Killed"]
    args += ["--model.widths", "[8, 16, 16]", "--model.whiten_bias_epochs", "1"]
    args += ["--max_epochs", "3", "--seed", "3", "--trainer.deterministic", "true"]
    args += ["--checkpoint.every_n_train_steps", "4"]
    # Calibrated after training on 10 held-out images (50 train: still 5 steps an epoch), with the 6 views of TTA.
    args += ["--data.val_size", "10", "--calibrate", "true"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def fit(*more: str, **variables: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(FIT), *args, *more]
        return subprocess.run(command, cwd=tmp_path, env={**env, **variables}, capture_output=True, text=True)

    assert fit("--name", "whole").returncode == 0  # 5 steps an epoch, 15 in all: lookahead at 5, 10 and 15
    assert fit("--name", "killed", KILL_AT_STEP="9").returncode == -9  # last.ckpt at step 8, in epoch 1
    runs = tmp_path / "lightning_logs"
    saved = torch.load(runs / "killed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 8 and "lookahead" in saved
    resumed = fit("--ckpt_path", "killed")
    assert resumed.returncode == 0, resumed.stderr
    whole, killed = (json.loads((runs / name / "test_metrics.json").read_text()) for name in ("whole", "killed"))
    differ = ("checkpoint", "time_s")  # the file's path, the seconds of the test
    # The temperature too is fitted after the resumed run as after the uninterrupted one.
    assert {k: v for k, v in killed.items() if k not in differ} == {k: v for k, v in whole.items() if k not in differ}
    assert whole["checkpoint"].endswith("-calibrated.ckpt") and whole["temperature"] != 1
    weights = [torch.load(runs / name / "checkpoints" / "last.ckpt")["state_dict"] for name in ("whole", "killed")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])

    # scripts/calibrate.py on the run folder: its best checkpoint, ImageFolder data, bf16-trained Airbench94 with TTA.
    calibrated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "calibrate.py"), str(runs / "whole")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert calibrated.returncode == 0, calibrated.stderr
    assert "(fitted on 10 validation images)" in calibrated.stdout and "Calibrated:      " in calibrated.stdout
