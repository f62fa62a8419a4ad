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

from tests.conftest import FIT, ROOT, load_fit_script, run_fit
from tests.fake_data import write_image_folder

CLASSES = tuple(f"class{i}" for i in range(10))


@pytest.fixture(scope="module")
def cifar_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CIFAR-10 look-alike as image folders: 10 classes of 32x32 colour images, train/ and test/."""
    return write_image_folder(
        tmp_path_factory.mktemp("cifar") / "cifar10-jpg", {"train": 6, "test": 2}, CLASSES, size=(32, 32)
    )


def recipe_args(config: str, root: Path) -> list[str]:
    """The recipe's config on the image folders (the README's JPEG variant), with tiny batches."""
    return ["--config", str(ROOT / "configs" / config), "--data", "ImageFolder", "--data.root", str(root)]


RECIPES = sorted(path.name for path in (ROOT / "configs").glob("*.yaml") if path.name != "search_digits.yaml")


@pytest.mark.parametrize("config", RECIPES)
def test_options_a_recipe_leaves_out_are_its_classes_own_defaults(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not those of the default MLP and MNIST: Airbench94 trained at the MLP's lr 0.001, and did not learn."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        load_fit_script().build_cli(["--config", str(ROOT / "configs" / config), "--print_config"])
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


@pytest.mark.parametrize(
    ("config", "shorter"),
    [("cifar10_airbench.yaml", []), ("cifar10_resnet.yaml", ["--model.warmup_epochs", "0.5"])],  # of 1 epoch, not 24
)
def test_recipe_trains_one_epoch_under_ddp_on_two_cpu_processes(
    tmp_path: Path, cifar_folders: Path, config: str, shorter: list[str]
) -> None:
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max_epochs", "1", *shorter]
    tiny = ["--data.batch_size", "10", "--data.num_workers", "0", "--trainer.enable_progress_bar", "false"]
    result = run_fit(*recipe_args(config, cifar_folders), *ddp, *tiny, cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    (run,) = (tmp_path / "lightning_logs").iterdir()
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert Path(metrics["checkpoint"]).name == "last.ckpt"  # all the training images train: nothing validates
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 3  # 60 images, 10 a batch on each of 2 processes
    augment = checkpoint["datamodule_hyper_parameters"]["augment"]
    assert augment == {"cifar10_airbench.yaml": "airbench", "cifar10_resnet.yaml": "page"}[config]


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


def test_airbench_killed_mid_run_resumes_to_the_uninterrupted_result(tmp_path: Path, cifar_folders: Path) -> None:
    """The lookahead average, the whitening and the per-group schedule come back from the checkpoint exactly."""
    (tmp_path / "killed.py").write_text(KILLED)
    args = [*recipe_args("cifar10_airbench.yaml", cifar_folders), "--model", "killed.Killed"]
    args += ["--model.widths", "[8, 16, 16]", "--model.whiten_bias_epochs", "1", "--data.batch_size", "12"]
    args += ["--max_epochs", "3", "--seed", "3", "--trainer.deterministic", "true", "--data.num_workers", "0"]
    args += ["--checkpoint.every_n_train_steps", "4", "--trainer.enable_progress_bar", "false"]
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
    assert {k: v for k, v in killed.items() if k != "checkpoint"} == {
        k: v for k, v in whole.items() if k != "checkpoint"
    }
    weights = [torch.load(runs / name / "checkpoints" / "last.ckpt")["state_dict"] for name in ("whole", "killed")]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
