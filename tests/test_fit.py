"""scripts/fit.py end to end, in a subprocess, as a user runs it: on fake data in the real formats."""

import contextlib
import csv
import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer

from cli import environment
from cli.calibration import split_logits
from cli.parser import build_cli
from datamodules import MNIST
from models import MLP
from models.calibration import fit_temperature
from tests.conftest import QUICK, assert_user_error, run_fit, run_script
from tests.fake_data import write_image_folder


def only_run_dir(cwd: Path) -> Path:
    runs = sorted((cwd / "lightning_logs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_fit_writes_logs_config_checkpoints_and_test_metrics(tmp_path: Path, mnist_root: Path) -> None:
    args = ["--data.data_dir", str(mnist_root), "--data.download", "false", *QUICK, "--max_epochs", "2"]
    result = run_script("fit", *args, cwd=tmp_path, env={"PYTHONWARNINGS": ""})  # warnings as a user sees them
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    assert run.name == "mnist-mlp-1"
    assert list(run.glob("events.out.tfevents.*"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "models.MLP" and config["data"]["class_path"] == "datamodules.MNIST"
    assert config["seed_everything"] == 42
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())  # plain YAML: no !!python/tuple
    assert hparams["model"]["class"] == "MLP" and hparams["model"]["input_shape"] == [1, 28, 28]
    assert hparams["data"]["class"] == "MNIST" and hparams["trainer"]["max_epochs"] == 2 and hparams["seed"] == 42
    assert "_instantiator" not in hparams["model"] and "_class_path" not in hparams["data"]
    with open(run / "metrics.csv", newline="") as file:
        epochs = list(csv.DictReader(file))
    assert [row["epoch"] for row in epochs] == ["0", "1"]
    assert {"step", "time_s", "lr", "train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "val/ece"} <= set(
        epochs[0]
    )
    assert float(epochs[1]["step"]) > float(epochs[0]["step"]) > 0 and float(epochs[1]["val/acc"]) >= 0
    (provenance,) = json.loads((run / "provenance.json").read_text())
    assert "fit.py --data.data_dir" in provenance["command"] and provenance["torch"] == torch.__version__
    assert provenance["devices"] and provenance["resumed_from"] is None and "python" in provenance
    checkpoints = {path.name for path in (run / "checkpoints").iterdir()}
    best = [name for name in checkpoints if name.startswith("best-epoch=")]
    assert "last.ckpt" in checkpoints and len(best) == 1
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert set(metrics) >= {"test/acc", "test/f1", "test/auroc", "test/loss", "test/ece", "test/nll", "checkpoint"}
    assert metrics["temperature"] == 1 and metrics["test/nll"] == pytest.approx(metrics["test/loss"])  # no smoothing
    assert (run / "reliability_val.png").is_file() and (run / "reliability_test.png").is_file()
    assert Path(metrics["checkpoint"]).name == best[0] and 0 < metrics["time_s"] < 60  # the test loop's seconds
    assert f"Test accuracy:   {metrics['test/acc']:.2%}" in result.stdout
    assert "tensorboard --logdir lightning_logs" in result.stdout
    assert "optimizer" not in config and "lr_scheduler" not in config  # Lightning's own, unused: not options

    # What the log of a run to a pipe shows: one plain line per epoch, with its metrics; no Lightning noise.
    output = result.stdout + result.stderr
    assert "\x1b[" not in output and all(line == line.rstrip() for line in output.splitlines())
    epochs = [line for line in result.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split("  ")[0] for line in epochs] == ["Epoch 0/1", "Epoch 1/1"], result.stdout
    assert all(f" {name} " in line for line in epochs for name in ("train/loss", "val/loss", "val/acc", "samples/s"))
    assert "Running on cpu, 1 process, precision 32-true, seed 42\n" in result.stdout
    noises = ["GPU available", "TPU available", "Tip:", "already configured", "estimate number of stepping"]
    noises += ["Seed set", "smaller than the logging interval"]
    for noise in noises:
        assert noise not in output, noise
    # A loss curve, though the epochs (9 steps) are shorter than Lightning's logging interval (50 steps).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            curves.setdefault(tag, []).extend(event.value for event in accumulator.Scalars(tag))
    assert len(curves["train/loss_step"]) >= 10
    assert max(curves["train/epoch"]) == 1  # the last epoch trained (the test after it came at epoch 2)
    assert "val_metrics" not in result.stdout and "criterion" not in result.stdout  # the summary lists the network
    assert not re.search(r"\d\.\d{7,}", result.stdout)  # no unrounded float32 in the test results

    # The best checkpoint reloads with no argument and reproduces the written test accuracy.
    model = MLP.load_from_checkpoint(run / "checkpoints" / best[0])
    data = MNIST(data_dir=str(mnist_root), download=False, num_workers=0, batch_size=32)
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(model, datamodule=data, verbose=False)
    assert tested["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_tensorboard_events_hold_curves_learning_rate_and_hparams_and_the_mlflow_preset_the_same(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    configs = Path(__file__).parents[1] / "configs"
    presets = ["--config", str(configs / "digits.yaml"), "--config", str(configs / "logger" / "mlflow.yaml")]
    result = run_fit(*presets, *QUICK, "--trainer.log_every_n_steps", "10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert " INFO mlflow" not in result.stderr  # its database's creation, on every first run
    steps, hparams, images = {}, {}, set()
    for events in only_run_dir(tmp_path).glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        steps |= {tag: [event.step for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}
        images |= set(accumulator.Tags()["images"])
        with contextlib.suppress(KeyError):  # raised by a file with no hparams summary
            for tag, content in accumulator.PluginTagToContent("hparams").items():
                hparams[tag] = plugin_data_pb2.HParamsPluginData.FromString(content)
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "val/auroc", "test/acc", "train/lr"} <= set(
        steps
    )
    assert {"val_class_acc/0", "val_class_acc/9"} <= set(steps)  # a group of their own, after val/
    assert {"val/ece", "test/ece", "test/nll"} <= set(steps)
    assert {"val/reliability", "test/reliability"} <= images
    assert not [tag for tag in steps if tag == "epoch" or tag.startswith("lr-") or "/class_acc/" in tag]
    assert steps["test/acc"] == [max(steps["train/loss"]) + 1]  # once, at the run's last step (not at step 0)

    # HPARAMS: the same columns for every run, with the model class and max_epochs, none internal.
    session = hparams["_hparams_/session_start_info"].session_start_info.hparams
    assert {"model", "data", "max_epochs", "lr", "batch_size", "model_args", "data_args", "seed"} <= set(session)
    assert not {"_class_path", "_instantiator", "num_workers", "pin_memory", "fold"} & set(session)
    assert session["model"].string_value == "CNN" and session["max_epochs"].string_value == "1"
    assert session["batch_size"].string_value == "32" and "channels=[32, 64, 128]" in session["model_args"].string_value
    assert session["lr"].number_value == 0.001
    assert hparams["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS

    # The MLflow preset: the same metrics, the options, figures and the run folder's files, in ./mlflow.db.
    tested = json.loads((only_run_dir(tmp_path) / "test_metrics.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lightning_logs").experiment_id])
    assert run.data.metrics["test/acc"] == pytest.approx(tested["test/acc"])
    assert {"train/loss", "val/acc", "train/lr"} <= set(run.data.metrics)
    assert run.data.params["model/class"] == "CNN" and run.data.params["trainer/max_epochs"] == "1"
    # Named after the run folder, not a random name (the same for every seeded run), and tagged with its path.
    folder = only_run_dir(tmp_path)
    assert run.info.run_name == folder.name and run.data.tags["run_folder"] == str(folder.resolve())
    artifacts = {item.path for folder in ("run", "figures") for item in client.list_artifacts(run.info.run_id, folder)}
    assert {"run/config.yaml", "run/metrics.csv", "run/test_metrics.json"} <= artifacts
    assert "figures/test_confusion_matrix_step000040.png" in artifacts


def test_default_root_dir_is_where_the_run_folders_go(tmp_path: Path) -> None:
    """--trainer.default_root_dir was silently ignored: the logs still went to ./lightning_logs."""
    args = ["--data", "Digits", "--model.hidden_sizes", "[16]", *QUICK, "--trainer.default_root_dir", "out"]
    result = run_fit(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        not (tmp_path / "lightning_logs").exists()
        and "Run folder:      out/lightning_logs/digits-mlp-1" in result.stdout
    )
    assert (tmp_path / "out/lightning_logs/digits-mlp-1/checkpoints/last.ckpt").is_file()


def test_own_model_from_a_file_outside_the_project(tmp_path: Path) -> None:
    (tmp_path / "my_nets.py").write_text(
        textwrap.dedent(
            """
            import math
            from torch import nn
            from models import ImageClassifier

            class TinyNet(ImageClassifier):
                def __init__(self, num_classes: int, input_shape: tuple[int, int, int], width: int = 16, **kwargs):
                    super().__init__(num_classes, input_shape, **kwargs)
                    self.net = nn.Sequential(
                        nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(), nn.Linear(width, num_classes)
                    )

                def forward(self, x):
                    return self.net(x)
            """
        )
    )
    result = run_fit(
        "--model",
        "my_nets.TinyNet",
        "--model.width",
        "8",
        "--model.optimizer",
        "sgd",
        "--data",
        "Digits",
        *QUICK,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["class_path"] == "my_nets.TinyNet"
    sys.path.insert(0, str(tmp_path))
    try:
        from my_nets import TinyNet

        model = TinyNet.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    finally:
        sys.path.remove(str(tmp_path))
    assert model.net[1].out_features == 8 and model.hparams.optimizer == "sgd"


def test_image_folder_and_cnn_from_the_short_flags_read_image_by_image_logged_as_csv(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 12}, size=(16, 16))
    write_image_folder(root, {"test": 4}, classes=("cat",), size=(16, 16))  # no test image of dog or fox
    per_image = ["--data.in_memory", "false", "--data.num_workers", "1"]  # DataLoader workers decode each epoch
    args = ["--model", "CNN", "--data", "ImageFolder", "--data.root", str(root), "--seed", "3", *QUICK, *per_image]
    csv_preset = ["--config", str(Path(__file__).parents[1] / "configs" / "logger" / "csv.yaml")]
    augment = ["--data.augment", "airbench", "--data.cutout", "4", "--data.auto_augment", "trivialaugment"]
    augment += ["--data.mixup_alpha", "0.2", "--data.cutmix_alpha", "1", "--model.tta", "flip_translate"]
    # All of train/ trains, no validation.
    result = run_fit(*csv_preset, *args, *augment, "--data.val_size", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    tested = "tested lightning_logs/imagefolder-cnn-1/checkpoints/last.ckpt"
    assert f"Best checkpoint: none (no validation part, nothing chosen); {tested}" in result.stdout
    assert [path.name for path in (run / "checkpoints").iterdir()] == ["last.ckpt"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed_everything"] == 3 and config["trainer"]["max_epochs"] == 1
    assert config["data"]["init_args"]["in_memory"] is False
    assert config["data"]["init_args"]["augment"] == "airbench"
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, weights_only=False)["hyper_parameters"]["tta"] == "flip_translate"  # for test/predict
    assert not (root / ".tensor_cache").exists(), "nothing is decoded ahead when images are read one by one"
    # The metrics that one test class leaves undefined are missing, and said to be, not 0.
    undefined = "test/class_acc/dog (no test image of the class); test/class_acc/fox (no test image of the class); "
    assert f"Not defined:     {undefined}test/auroc (the test images are all of one class)" in result.stdout
    assert "test/auroc" not in result.stdout.split("Test accuracy:")[1].splitlines()[0]
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert "test/class_acc/cat" in metrics and not {"test/auroc", "test/class_acc/dog"} & set(metrics)
    assert set(metrics["undefined"]) == {"test/auroc", "test/class_acc/dog", "test/class_acc/fox"}

    # The CSV preset: the run folder as with TensorBoard, without its events; every logged value in steps.csv.
    assert not list(run.glob("events.out.tfevents.*"))
    assert {"metrics.csv", "test_metrics.json", "provenance.json"} <= {path.name for path in run.iterdir()}
    with open(run / "steps.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {"train/loss", "test/acc"} <= set(rows[0]) and not [name for name in rows[0] if name.startswith("val")]
    assert "test/auroc" not in rows[0]  # undefined: left out of the logs
    tested = json.loads((run / "test_metrics.json").read_text())
    assert [float(row["test/acc"]) for row in rows if row["test/acc"]] == [pytest.approx(tested["test/acc"])]
    assert yaml.safe_load((run / "hparams.yaml").read_text())["model"]["class"] == "CNN"
    # Nothing held out, nothing to fit a temperature on.
    assert_user_error(run_script("calibrate", str(run), cwd=tmp_path), "without a validation split", "val_size 5000")


RECORDER = '''
import hashlib, json
import torch
from models import MLP
from models.calibration import fit_temperature

class Recorder(MLP):
    """The MLP, writing down which images each rank trains on, and the validation metrics of each epoch."""

    def training_step(self, batch, batch_idx):
        data = self.trainer.datamodule
        pixels = torch.round((batch[0] * data.std[0] + data.mean[0]) * 255).to(torch.uint8)
        with open(f"seen-epoch{self.current_epoch}-rank{self.global_rank}.txt", "a") as file:
            file.writelines(hashlib.sha1(image.numpy().tobytes()).hexdigest() + "\\n" for image in pixels)
        return super().training_step(batch, batch_idx)

    def on_validation_epoch_end(self):
        metrics = {name: float(value) for name, value in self.val_metrics.compute().items()}
        metrics["val/loss"] = float(self.val_loss.compute())
        if self.global_rank == 0:
            with open(f"val-epoch{self.current_epoch}.json", "w") as file:
                json.dump(metrics, file)
        super().on_validation_epoch_end()
'''


def fingerprints(images: torch.Tensor) -> Counter:
    return Counter(hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images)


def test_ddp_on_two_cpu_processes_shards_every_sample_exactly_once(
    tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "recorder.py").write_text(RECORDER)
    data = ["--data.data_dir", str(mnist_root), "--data.download", "false", "--data.val_size", "59"]
    args = ["--model", "recorder.Recorder", *data, *QUICK, "--max_epochs", "2"]
    args += ["--model.ema_decay", "0.9", "--model.warmup_epochs", "0.5"]  # the average is what validates and tests
    args += ["--calibrate", "true"]  # the temperature is fitted on the validation logits of both processes
    args += ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    result = run_script("fit", *args, cwd=tmp_path, env={"PYTHONWARNINGS": ""})  # the warnings a user sees
    assert result.returncode == 0, result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert "sync_dist=True" not in result.stderr and "Seed set" not in result.stderr  # the per-class values
    assert result.stdout.count("Test accuracy:") == 1  # the summary comes from rank 0 only

    # Training: each epoch, the two ranks together see every training image exactly once, in a new order.
    dm = MNIST(data_dir=str(mnist_root), download=False, val_size=59, num_workers=0, batch_size=32)
    dm.setup("fit")
    train = fingerprints(dm.train_set.images)
    orders = []
    for epoch in (0, 1):
        ranks = [(tmp_path / f"seen-epoch{epoch}-rank{rank}.txt").read_text().split() for rank in (0, 1)]
        assert ranks[0] and ranks[1]
        assert Counter(ranks[0] + ranks[1]) == train
        orders.append(ranks[0])
    assert orders[0] != orders[1]

    # Validation (59 images: no even split), calibration and test count every sample once: as on one process.
    run = only_run_dir(tmp_path)
    tested_ddp = json.loads((run / "test_metrics.json").read_text())
    assert tested_ddp["checkpoint"].endswith("-calibrated.ckpt")
    best = tested_ddp["checkpoint"].removesuffix("-calibrated.ckpt") + ".ckpt"
    best_epoch = re.search(r"best-epoch=(\d+)", best)[1]
    validated_ddp = json.loads((tmp_path / f"val-epoch{best_epoch}.json").read_text())
    monkeypatch.chdir(tmp_path)  # the recorder writes its files here
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "recorder", raising=False)  # another test's recorder.py, imported before
    recorder = importlib.import_module("recorder")
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    model = recorder.Recorder.load_from_checkpoint(best)
    (validated,) = trainer.validate(model, datamodule=dm, verbose=False)
    for name, value in validated_ddp.items():
        assert validated[name] == pytest.approx(value, abs=1e-6), name
    temperature = fit_temperature(*split_logits(trainer, model, dm, "val"))
    assert tested_ddp["temperature"] == pytest.approx(temperature, rel=1e-5)
    model.temperature.fill_(tested_ddp["temperature"])
    (tested,) = trainer.test(model, datamodule=dm, verbose=False)
    for name in ("test/acc", "test/f1", "test/auroc", "test/loss", "test/ece", "test/nll"):
        assert tested[name] == pytest.approx(tested_ddp[name], abs=1e-6), name


@pytest.mark.parametrize("nvml_loads", [True, False])
def test_nvml_based_cuda_check_goes_only_where_nvml_cannot_be_loaded(
    monkeypatch: pytest.MonkeyPatch, nvml_loads: bool
) -> None:
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as Lightning sets it on import

    def load_library(name: str) -> object:
        if not nvml_loads:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return object()

    monkeypatch.setattr(environment.ctypes, "CDLL", load_library)
    environment.skip_nvml_without_driver()
    assert (os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1") is nvml_loads


def test_bf16_mixed_precision_on_cpu_logged_to_weights_and_biases_offline(tmp_path: Path) -> None:
    wandb_preset = ["--config", str(Path(__file__).parents[1] / "configs" / "logger" / "wandb.yaml")]
    args = [*wandb_preset, "--data", "Digits", "--precision", "bf16-mixed", *QUICK]
    result = run_script("fit", *args, cwd=tmp_path, env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr
    assert "Symlinked" not in result.stderr  # once for each of the run folder's files
    run = only_run_dir(tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"] == "bf16-mixed"

    # The W&B preset: a TensorBoard run folder as always, and an offline W&B run with the metrics (in its binary
    # log), the options, figures and the run folder's files.
    assert list(run.glob("events.out.tfevents.*"))
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    log = next(offline.glob("run-*.wandb")).read_bytes()
    expected = (b"test/acc", b"val/acc", b"train/loss", b"MLP", b"max_epochs", f"run folder: {run.resolve()}".encode())
    missing = [name for name in expected if name not in log]
    assert not missing
    files = offline / "files"
    assert {"config.yaml", "metrics.csv", "test_metrics.json"} <= {path.name for path in (files / run.name).iterdir()}
    images = {
        path.parent.name + "/" + path.name.split("_step")[0] for path in (files / "media" / "images").rglob("*.png")
    }
    assert any(name.startswith("test/confusion_matrix") for name in images), images

    # scripts/test.py computes in the checkpoint's precision: the figures of the run, to the last digit.
    tested = json.loads((run / "test_metrics.json").read_text())
    again = run_script("test", "--ckpt_path", tested["checkpoint"], "--json", "again.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    retested = json.loads((tmp_path / "again.json").read_text())
    assert (retested["test/acc"], retested["test/loss"]) == (tested["test/acc"], tested["test/loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_16_mixed_on_one_gpu(tmp_path: Path, mnist_root: Path) -> None:
    args = ["--model", "CNN", "--data.data_dir", str(mnist_root), "--data.download", "false", *QUICK]
    result = run_fit(*args, "--accelerator", "gpu", "--devices", "1", "--precision", "16-mixed", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_command_line_builds_a_run_from_a_notebook_short_flags_too(tmp_path: Path, monkeypatch) -> None:
    """As the README's Layout shows: cli.parser.build_cli, outside any command, with the short flags."""
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["--data", "Digits", "--model", "CNN", "--max_epochs", "3", "--seed", "5"])
    assert (cli.trainer.max_epochs, cli.config.seed_everything, type(cli.model).__name__) == (3, 5, "CNN")


def test_help_keeps_the_examples_and_a_class_help_is_short(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    environment.prepare_process()  # as every command does first
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        build_cli(["--help"])
    help_text = capsys.readouterr().out
    assert "\nExamples:\n    python scripts/fit.py  " in help_text  # the docstring's lines, not one paragraph
    assert "--config CONFIG" in help_text
    assert "--optimizer " not in help_text and "--lr_scheduler " not in help_text
    headings = [line for line in help_text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert not any("``" in heading or ":class:" in heading for heading in headings), headings
    with pytest.raises(SystemExit):
        build_cli(["--model.help", "CNN"])
    model_help = capsys.readouterr().out
    assert "--model.l1" in model_help and len(model_help.splitlines()) < 150, model_help[-2000:]


def test_a_config_from_before_the_loggers_moved_still_builds_its_run(tmp_path: Path, monkeypatch) -> None:
    """A run's config.yaml from before loggers/ names callbacks.RunLogger and callbacks.AtomicCheckpointIO."""
    monkeypatch.chdir(tmp_path)
    old = "trainer:\n  logger:\n    class_path: callbacks.RunLogger\n"
    old += "  plugins:\n    class_path: callbacks.AtomicCheckpointIO\n"
    (tmp_path / "config.yaml").write_text(old)
    cli = build_cli(["--config", "config.yaml", "--data", "Digits"])
    assert type(cli.trainer.logger).__name__ == "RunLogger"
