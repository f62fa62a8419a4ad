"""Bad input: one clear line on stderr, a non-zero exit, no traceback, and nothing already written touched."""

import contextlib
import hashlib
import io
import json
import os
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cli.commands.fit import main as fit_main
from tests.conftest import QUICK, run_fit
from tests.fake_data import write_cifar, write_image_folder, write_mnist


def run_main(args: list[str], cwd: Path) -> tuple[int, list[str]]:
    """scripts/fit.py's main() in this process (the many cases stay fast): its exit code and its error lines."""
    stderr = io.StringIO()
    argv, workdir = sys.argv, os.getcwd()
    sys.argv = ["fit.py", *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(stderr):
            code = fit_main()
    finally:
        sys.argv = argv
        os.chdir(workdir)
    return code, [line for line in stderr.getvalue().splitlines() if line.startswith("error:")]


def assert_one_error(args: list[str], cwd: Path, message: str, code: int = 1) -> None:
    returned, errors = run_main(args, cwd)
    assert returned == code and len(errors) == 1 and message in errors[0], (returned, errors)


FLAGS = [
    (["--model", "MPL"], "unknown --model 'MPL': did you mean MLP? choose one of MLP, CNN", 2),
    (["--data", "Cifar10"], "unknown --data 'Cifar10': did you mean CIFAR10?", 2),
    (["--model", "missing_file.MyNet"], "--model: No module named 'missing_file'", 2),
    (["--model.lr", "abc"], "--model.lr must be a number, got 'abc'", 2),
    (["--model.lr", "-1"], "lr must be a positive number, got -1.0", 1),
    (["--model.lr", "nan"], "--model.lr must be a finite number, got nan", 2),
    (["--max_epochs", "two"], "--trainer.max_epochs must be a whole number, got 'two'", 2),
    (["--no_such_flag", "1"], "unknown option --no_such_flag: see --help for the options", 2),
    (["--trainer.max_epochz", "2"], "unknown option --trainer.max_epochz: did you mean --trainer.max_epochs?", 2),
    (["--model.lrr", "0.1"], "unknown option --model.lrr: did you mean --model.lr?", 2),
    (["--data.batch_sise", "8"], "unknown option --data.batch_sise: did you mean --data.batch_size?", 2),
    (["--trainer.max_epoch", "3"], "unknown option --trainer.max_epoch: did you mean --trainer.max_epochs?", 2),
    (["--max_epoch", "3"], "unknown option --max_epoch: did you mean --max_epochs?", 2),
    (["--data.batch", "8"], "unknown option --data.batch: did you mean --data.batch_size?", 2),
    (["--config", "max_epoch.yaml"], "--config max_epoch.yaml: unknown option trainer.max_epoch: did you mean", 2),
    (["--config", "lrr.yaml"], "--config lrr.yaml: unknown option model.lrr: did you mean model.lr?", 2),
    (["--config", "ten.yaml"], "--config ten.yaml: trainer.max_epochs must be a whole number, got 'ten'", 2),
    (["--config", "empty.yaml"], "--config empty.yaml: the file holds no options: give YAML such as", 2),
    (["--ckpt_path", "zero.ckpt"], "the checkpoint zero.ckpt is empty (0 bytes): it was never written", 1),
    (["--data.batch_size", "5000"], "--data.batch_size 5000 is larger than the training set (1258 images)", 1),
    (["--ckpt_path", "missing.ckpt"], "--ckpt_path missing.ckpt: no such checkpoint file", 1),
    (["--ckpt_path", "last"], "--ckpt_path last: no last.ckpt in lightning_logs", 1),
    (["--ckpt_path", "no_such_run"], "--ckpt_path no_such_run: no such checkpoint file, run folder or run name", 1),
    (["--max_epochs", "0"], "--max_epochs 0 trains nothing: the test would measure untrained weights", 1),
    (["--data.augment", "page"], "no flips (add --data.flip none to keep the rest of --data.augment page)", 1),
    (["--model", "Airbench94"], "got 8x8: use data with larger images (ImageFolder resizes them with", 1),
    (["--data.cutout", "8"], "--data.cutout 8 is not smaller than the 8x8 images: it would erase whole images", 1),
    (["--data.translate", "9"], "--data.translate 9 is not smaller than the 8x8 images", 1),
]


# Config files that FLAGS give to --config.
CONFIGS = {
    "max_epoch.yaml": "trainer:\n  max_epoch: 3\n",
    "lrr.yaml": "model:\n  class_path: models.MLP\n  init_args:\n    lrr: 0.1\n",
    "ten.yaml": "trainer:\n  max_epochs: ten\n",
    "empty.yaml": "# nothing but a comment\n",
    "zero.ckpt": "",
}


@pytest.mark.parametrize(("args", "message", "code"), FLAGS)
def test_bad_flags(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    for name, text in CONFIGS.items():
        (tmp_path / name).write_text(text)
    assert_one_error(["--data", "Digits", *args], tmp_path, message, code)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here, so --accelerator gpu is no error")
def test_gpu_asked_for_where_there_is_none_in_a_real_process(tmp_path: Path) -> None:
    result = run_fit("--data", "Digits", "--accelerator", "gpu", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--accelerator gpu: no CUDA GPU is visible here" in errors[0], result.stderr


def test_invalid_yaml_config_names_the_file_and_the_place(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("model:\n  init_args: {lr: [1, 2\n")
    assert_one_error(["--config", "run.yaml"], tmp_path, "--config run.yaml: not valid YAML: did not find", 2)


def test_unwritable_log_folder(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("in the way")
    args = ["--data", "Digits", *QUICK, "--trainer.logger.init_args.save_dir", "a_file/runs"]
    assert_one_error(args, tmp_path, "cannot write there (Not a directory): run from a writable folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_log_folder(tmp_path: Path) -> None:
    (tmp_path / "read_only").mkdir(mode=0o500)
    args = ["--data", "Digits", *QUICK, "--trainer.logger.init_args.save_dir", "read_only"]
    assert_one_error(args, tmp_path, "cannot write there (Permission denied)")


def mnist_with(tmp_path: Path, damage) -> list[str]:
    raw = write_mnist(tmp_path / "data") / "MNIST" / "raw"
    damage(raw)
    return ["--data.data_dir", str(tmp_path / "data"), "--data.download", "false", *QUICK]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def label_12(raw: Path) -> None:
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[20] = 12  # MNIST labels are 0-9
    labels.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: truncate(raw / "train-images-idx3-ubyte"), "the MNIST files in"),
        (lambda raw: (raw / "t10k-labels-idx1-ubyte").write_bytes(b"garbage"), "are incomplete or damaged"),
        (label_12, "1 label(s) out of range in MNIST's data, e.g. 12: its 10 classes are numbered 0 to 9"),
    ],
    ids=["truncated", "garbage", "label_out_of_range"],
)
@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_damaged_mnist_files(tmp_path: Path, damage, message: str, in_memory: str) -> None:
    assert_one_error([*mnist_with(tmp_path, damage), "--data.in_memory", in_memory], tmp_path, message)
    assert not (tmp_path / "lightning_logs").exists()  # the run failed before its first epoch: no folder left


def test_damaged_cifar_batch(tmp_path: Path, cifar_root: Path) -> None:
    write_cifar(cifar_root)
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": "nothing"})[:-5])
    args = ["--data", "CIFAR10", "--data.data_dir", str(cifar_root), "--data.download", "false", *QUICK]
    assert_one_error(args, tmp_path, "the CIFAR10 files in")


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_unreadable_image_is_named(tmp_path: Path, in_memory: str) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 6, "test": 2})
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    args = ["--data", "ImageFolder", "--data.root", str(root), "--data.in_memory", in_memory, *QUICK]
    assert_one_error(args, tmp_path, "cannot read the image", 1)
    assert_one_error(args, tmp_path, "broken.png (not an image, or damaged): remove or replace it", 1)


def test_an_image_over_the_pixel_limit_stops_fit_in_one_line_before_any_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "100")  # refused: over 200 pixels; the images are 12x10
    root = write_image_folder(tmp_path / "images", {"train": 6, "test": 2})
    Image.new("RGB", (20, 20)).save(root / "train" / "dog" / "scan.png")
    args = ["--data", "ImageFolder", "--data.root", str(root), *QUICK]
    assert_one_error(args, tmp_path, "scan.png (Image size (400 pixels) exceeds limit of 200 pixels")
    assert_one_error(args, tmp_path, "raise the limit with the environment variable MAX_IMAGE_PIXELS")
    assert not (tmp_path / "lightning_logs").exists()


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 6})
    (root / "train" / "zebra").mkdir()
    args = ["--data", "ImageFolder", "--data.root", str(root), *QUICK]
    assert_one_error(args, tmp_path, "Found no valid file for the classes zebra")


@pytest.fixture(scope="module")
def mlp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    result = run_fit("--data", "Digits", *QUICK, cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "lightning_logs" / "digits-mlp-1" / "checkpoints" / "last.ckpt"


def test_truncated_checkpoint(tmp_path: Path, mlp_checkpoint: Path) -> None:
    (tmp_path / "cut.ckpt").write_bytes(mlp_checkpoint.read_bytes()[:50_000])
    args = ["--data", "Digits", *QUICK, "--ckpt_path", "cut.ckpt"]
    assert_one_error(args, tmp_path, "cannot read the checkpoint cut.ckpt")


def test_checkpoint_of_another_model(tmp_path: Path, mlp_checkpoint: Path) -> None:
    args = ["--model", "CNN", "--data", "Digits", *QUICK, "--ckpt_path", str(mlp_checkpoint)]
    assert_one_error(args, tmp_path, "was written with other options: --model models.CNN (its run: models.MLP)")
    # A checkpoint that does not say which options made it: its weights tell.
    checkpoint = torch.load(mlp_checkpoint, weights_only=False)
    del checkpoint["run_options"]
    torch.save(checkpoint, tmp_path / "older.ckpt")
    args[-1] = "older.ckpt"
    assert_one_error(args, tmp_path, "holds another model than this run's CNN")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max_epochs", "3"], "--trainer.max_epochs 3 (its run: 1): the learning-rate schedule of"),
        (["--max_epochs", "3"], "train on in a new run from its weights: --init_weights"),
        (["--model.lr", "0.01"], "was written with other options: --model.lr 0.01 (its run: 0.001)"),
        (["--data.val_size", "0.2"], "was written with other options: --data.val_size 0.2 (its run: 0.1)"),
    ],
)
def test_resuming_with_other_options_is_refused(tmp_path: Path, mlp_checkpoint: Path, args, message) -> None:
    run = mlp_checkpoint.parents[1]
    before = digests(run)
    assert_one_error(["--config", str(run / "config.yaml"), "--ckpt_path", "last", *args], tmp_path, message)
    assert digests(run) == before and not list(tmp_path.iterdir())


def test_a_finished_run_trains_on_from_its_weights_in_a_new_run(
    tmp_path: Path, mlp_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    run = mlp_checkpoint.parents[1]
    args = ["--data", "Digits", *QUICK, "--init_weights", str(run), "--trainer.logger", "CSVLogger"]
    code, errors = run_main([*args, "--trainer.enable_progress_bar", "false"], tmp_path)
    assert code == 0 and not errors
    summary = capsys.readouterr().out
    assert "TensorBoard" not in summary  # the CSV logger writes no TensorBoard run
    written = re.search(r"Test metrics: +(\S+)", summary)[1]
    accuracy = json.loads((tmp_path / written).read_text())["test/acc"]
    assert accuracy > json.loads((run / "test_metrics.json").read_text())["test/acc"]  # one epoch more than it


def test_logs_and_checkpoints_switched_off(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["--data", "Digits", *QUICK, "--trainer.enable_progress_bar", "false"]
    code, errors = run_main([*args, "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"], tmp_path)
    assert code == 0 and not errors
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    # No events, no checkpoints; the reliability diagrams as PNG files, as in every run folder.
    run_files = ["config.yaml", "metrics.csv", "provenance.json", "reliability_test.png", "reliability_val.png"]
    run_files = ["classification_report.txt", *run_files, "test_metrics.json"]
    assert written == [f"lightning_logs/digits-mlp-1/{name}" for name in run_files]
    summary = capsys.readouterr().out
    assert "Best checkpoint: none (the final weights were tested)" in summary and "TensorBoard" not in summary


def test_images_of_mixed_sizes_and_colour_modes_are_resized_and_converted(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 6, "test": 2}, size=(12, 10))
    write_image_folder(root, {"train": 2}, classes=("cat",), size=(30, 20), mode="L", seed=1, suffix=".jpg")
    args = ["--data", "ImageFolder", "--data.root", str(root), *QUICK, "--data.batch_size", "8"]
    code, errors = run_main(args, tmp_path)
    assert code == 0 and not errors


LETTERS = st.text(st.characters(categories=["L"]), min_size=1)
WORDS = st.text(st.characters(categories=["L", "Nd"]), min_size=1, max_size=12)
# Values each option must refuse; None: any text that is not one of the option's values.
REFUSED = {
    "--model.lr": st.one_of(st.floats(max_value=0), st.sampled_from(["inf", "nan"]), LETTERS),
    "--model.label_smoothing": st.floats(min_value=1, allow_infinity=False),
    "--model.dropout": st.floats(min_value=1, allow_infinity=False),
    "--model.optimizer": None,
    "--model.scheduler": None,
    "--data.batch_size": st.integers(max_value=0),
    "--data.val_size": st.floats(max_value=0).filter(bool),  # 0 (and -0.0) is no validation part
    "--max_epochs": LETTERS,
    "--precision": None,
    "--model": None,
    "--data": None,
    "--ckpt_path": WORDS.filter(lambda word: word != "last"),
}
# Switches drawn with the bad option: resuming the earlier run (its checkpoint is no checkpoint), logs, checkpoints.
SWITCHES = [[], ["--ckpt_path", "last"], ["--ckpt_path", "digits-mlp-1"], ["--trainer.logger", "false"]]
SWITCHES += [["--trainer.enable_checkpointing", "false"], ["--trainer.logger", "CSVLogger"]]


@st.composite
def bad_flags(draw) -> list[str]:
    """One option with a value it must refuse, or an unknown option, with one of the switches or none, on one
    process or two (DDP on the CPU: every refusal comes before the second process starts)."""
    switch = draw(st.sampled_from(SWITCHES))
    if draw(st.booleans()):
        switch = [*switch, "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    if draw(st.booleans()):
        return [*switch, f"--zz_{draw(WORDS)}", draw(WORDS)]
    option = draw(st.sampled_from(sorted(REFUSED)))
    values = REFUSED[option]
    value = draw(WORDS.filter(lambda word: word.lower() not in KNOWN_WORDS)) if values is None else draw(values)
    return [*switch, option, str(value)]


KNOWN_WORDS = {"mlp", "cnn", "resnet9", "mnist", "digits", "cifar10", "cifar100", "fashionmnist", "imagefolder"}
KNOWN_WORDS |= {"sgd", "adam", "adamw", "rmsprop", "adagrad", "none", "step", "cosine", "onecycle", "linear", "plateau"}
KNOWN_WORDS |= {"16", "32", "64", "bf16", "16-mixed", "bf16-mixed", "32-true", "64-true", "transformer-engine"}


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, str]]:
    """A folder with a finished run's files in it, and their digests."""
    folder = tmp_path_factory.mktemp("earlier_run")
    run = folder / "lightning_logs" / "digits-mlp-1"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "test_metrics.json", "checkpoints/last.ckpt", "checkpoints/best-epoch=0.ckpt"):
        (run / name).write_bytes(os.urandom(64))
    return folder, digests(folder)


def digests(folder: Path) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.rglob("*") if path.is_file()}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flags=bad_flags())
def test_any_refused_value_or_unknown_option_is_one_line_and_touches_nothing(
    earlier_run: tuple[Path, dict[Path, str]], flags: list[str]
) -> None:
    folder, before = earlier_run
    code, errors = run_main(["--data", "Digits", *QUICK, *flags], folder)
    assert code != 0 and len(errors) == 1, (flags, code, errors)
    after = digests(folder)
    assert {path: after.get(path) for path in before} == before, flags


BREAKS_ON_RANK_1 = """
from models import MLP


class BreaksOnRank1(MLP):
    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if self.training and self.global_rank == 1 and self.global_step >= 2 else out
"""


def ddp_data_error(tmp_path: Path) -> list[str]:
    """A damaged image, met by global rank 0 alone while it decodes the images for both."""
    root = write_image_folder(tmp_path / "images", {"train": 4, "test": 1})
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    return ["--data", "ImageFolder", "--data.root", str(root), "--data.batch_size", "4"]


def ddp_checkpoint_error(tmp_path: Path) -> list[str]:
    (tmp_path / "cut.ckpt").write_bytes(b"not a checkpoint")
    return ["--data", "Digits", "--ckpt_path", "cut.ckpt"]


def ddp_nan_error(tmp_path: Path) -> list[str]:
    """A NaN loss on global rank 1 alone, while rank 0 goes on to the next step's gradient exchange."""
    (tmp_path / "breaks.py").write_text(BREAKS_ON_RANK_1)
    return ["--data", "Digits", "--model", "breaks.BreaksOnRank1", "--trainer.log_every_n_steps", "1"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (ddp_data_error, "cannot read the image"),
        (ddp_checkpoint_error, "cannot read the checkpoint cut.ckpt"),
        (ddp_nan_error, "the training loss became nan at epoch 0, step 2"),
    ],
    ids=["data", "checkpoint", "nan"],
)
def test_errors_under_ddp_are_one_line_from_one_process(tmp_path: Path, make_args, message: str) -> None:
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", *QUICK]
    ddp += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    result = run_fit(*make_args(tmp_path), *ddp, cwd=tmp_path, timeout=240)  # bounded: no process left waiting
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "[rank1]" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
