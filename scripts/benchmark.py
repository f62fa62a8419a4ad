#!/usr/bin/env python
"""Training speed of this project against plain PyTorch loops and bare Lightning, on the same data and model.

  (a) the tutorials' loop: a torchvision dataset that decodes every image through PIL, ToTensor and
      Normalize on every epoch, batched by a DataLoader;
  (b) a hand-written loop over tensors already in memory (on a GPU: already on the device), already
      normalized: the practical limit;
  (c) this project: scripts/fit.py's model, datamodule and Lightning Trainer (its callbacks and
      logger included), validation off;
  (d) bare Lightning: (b)'s batches and the same network in the smallest LightningModule (the loss,
      the optimizer and schedule, nothing else), by a Trainer with no callbacks, logger or progress
      bar: Lightning's own cost per step, the least that (c) can have.

Each method runs in a process of its own, in turn, for --rounds rounds (alternating evens out a
machine's changing load); the figure of a method is the median of its epochs' samples per second,
first epoch of each process excluded (warm-up), and the peak memory of its process. No augmentation
anywhere: all do the same work per sample.

Examples:
    python scripts/benchmark.py --model MLP --data mnist --data_dir ../shared/data
    python scripts/benchmark.py --model MLP --methods cd      # this project's cost on top of Lightning's
    python scripts/benchmark.py --model CNN --data cifar10 --data_dir /tmp/cifar10-jpg --device cuda
    python scripts/benchmark.py --model CNN --data cifar10 --generate       # no data needed
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torchvision import datasets, transforms

from cli.environment import prepare_process
from cli.flags import expand_short_flags
from cli.parser import build_cli
from datamodules import ClassificationDataModule
from models import ImageClassifier

METHODS = {
    "a": "tutorial loop (PIL per image)",
    "b": "hand-written loop (tensors)",
    "c": "this project (Lightning)",
    "d": "bare Lightning (tensors)",
}
SHAPES = {"mnist": (60_000, 28, 28, 1), "cifar10": (50_000, 32, 32, 3)}
Batches = Iterable[tuple[Tensor, Tensor]]  # with a len(): a DataLoader or a TensorEpochs, one epoch per iteration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line options (``--help`` documents each one)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--model", choices=["MLP", "CNN", "ResNet9"], default="MLP", help="model (default: MLP)")
    parser.add_argument(
        "--data",
        choices=["mnist", "cifar10"],
        default="mnist",
        help="mnist: torchvision's MNIST files (IDX) under --data_dir; "
        "cifar10: image folders (train/<class>/*.jpg) under --data_dir (default: mnist)",
    )
    parser.add_argument("--data_dir", default="../shared/data", help="where the data is (default: ../shared/data)")
    parser.add_argument(
        "--generate",
        action="store_true",
        help="generate random images of the data's shape and format in a temporary folder instead",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device (default: cpu)")
    parser.add_argument(
        "--precision",
        choices=["32-true", "bf16-mixed", "16-mixed"],
        default="32-true",
        help="precision of all three (default: 32-true)",
    )
    parser.add_argument("--batch_size", type=int, default=128, help="batch size of all three (default: 128)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per process, the first one warm-up (default: 3)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per method, in turn (default: 2)")
    parser.add_argument(
        "--samples", type=int, help="train on the first this many training samples per epoch (default: all)"
    )
    parser.add_argument(
        "--tutorial_workers", type=int, default=0, help="DataLoader workers of the tutorial loop (default: 0)"
    )
    parser.add_argument("--methods", default="abc", help="which of a, b, c, d to run (default: abc)")
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)  # one method, in this process
    return parser.parse_args(argv)


def generate(data: str, folder: Path) -> Path:
    """Random images in the data's real format: MNIST IDX files, or a folder of PNG images per class."""
    n, height, width, channels = SHAPES[data]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    if data == "mnist":
        raw = folder / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for split, part in (("train", slice(0, n)), ("t10k", slice(0, 10_000))):
            # IDX: magic number (unsigned byte, number of dimensions), then the sizes as big-endian int32.
            (raw / f"{split}-images-idx3-ubyte").write_bytes(
                bytes([0, 0, 8, 3])
                + np.array([len(labels[part]), height, width], ">i4").tobytes()
                + images[part, :, :, 0].tobytes()
            )
            (raw / f"{split}-labels-idx1-ubyte").write_bytes(
                bytes([0, 0, 8, 1]) + np.array([len(labels[part])], ">i4").tobytes() + labels[part].tobytes()
            )
        return folder
    from PIL import Image

    for split, count in (("train", n), ("test", 1_000)):
        for i in range(count):
            path = folder / split / f"class{labels[i]}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(path)
    return folder


def fit_args(args: argparse.Namespace, data_dir: str) -> list[str]:
    """scripts/fit.py options for this benchmark's model and data."""
    if args.data == "mnist":
        data = ["--data", "MNIST", "--data.data_dir", data_dir, "--data.download", "false"]
    else:
        data = ["--data", "ImageFolder", "--data.root", data_dir, "--data.image_size", "32", "--data.augment", "none"]
    return ["--model", args.model, *data, "--data.batch_size", str(args.batch_size), "--data.in_memory", "true"]


def project_parts(args: argparse.Namespace, data_dir: str) -> tuple[ImageClassifier, ClassificationDataModule]:
    """The model and the (set up) datamodule that scripts/fit.py builds, for the plain loops to share."""
    cli = build_cli(fit_args(args, data_dir))
    cli.datamodule.prepare_data()
    cli.datamodule.setup("fit")
    return cli.model, cli.datamodule


def tutorial_dataset(
    args: argparse.Namespace, data_dir: str, data: ClassificationDataModule
) -> torch.utils.data.Dataset:
    """The tutorials' dataset: PIL decode, ToTensor and Normalize for every image, every epoch."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])
    if args.data == "mnist":
        return datasets.MNIST(data_dir, train=True, transform=transform)
    return datasets.ImageFolder(str(Path(data_dir) / "train"), transform=transform)


class PlainLoop:
    """A hand-written training loop with the project's optimizer, schedule and precision; one epoch per call."""

    def __init__(self, args: argparse.Namespace, model: ImageClassifier, batches: Batches) -> None:
        self.device = torch.device(args.device)
        self.model = model.to(self.device).train()
        self.batches = batches
        hp = model.hparams
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=hp.lr, total_steps=len(batches) * args.epochs
        )
        self.dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def epoch(self) -> float:
        """Train one epoch; returns its samples per second."""
        synchronize(self.device)
        start, samples = time.perf_counter(), 0
        for x, y in self.batches:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                loss = self.model.criterion(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.step()
            samples += len(y)
        synchronize(self.device)
        return samples / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_tutorial(args: argparse.Namespace, data_dir: str) -> list[float]:
    """(a): a torchvision dataset through a DataLoader, as in the tutorials."""
    model, data = project_parts(args, data_dir)
    dataset = tutorial_dataset(args, data_dir, data)
    if args.samples:
        dataset = torch.utils.data.Subset(dataset, range(min(args.samples, len(dataset))))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.tutorial_workers,
        pin_memory=args.device == "cuda",
    )
    loop = PlainLoop(args, model, loader)
    return {"a": [loop.epoch() for _ in range(args.epochs)]}


class TensorEpochs:
    """(b)'s data: the training images, normalized once, on the device; each iteration is one epoch.

    An epoch's batches are slices of a fresh permutation; ``len()`` is the number of batches.
    """

    def __init__(self, args: argparse.Namespace, data: ClassificationDataModule) -> None:
        device = torch.device(args.device)
        self.images = data.preprocess(data.train_set.images[: args.samples].to(device), train=False)
        self.labels = data.train_set.labels[: args.samples].to(device)
        self.batch_size = args.batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.randperm(len(self.labels), device=self.labels.device)
        for start in range(0, len(self.labels), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.images[index], self.labels[index]

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)


def run_tensors(args: argparse.Namespace, data_dir: str) -> dict[str, list[float]]:
    """(b) on its own, in this process."""
    model, data = project_parts(args, data_dir)
    loop = PlainLoop(args, model, TensorEpochs(args, data))
    return {"b": [loop.epoch() for _ in range(args.epochs)]}


class PairedEpochs(Callback):
    """Times each training epoch of a Trainer as ``speeds[method]``, then trains (b) for one epoch as ``speeds["b"]``.

    The two alternate in one process, so a machine's changing speed touches both alike; (b) trains
    a copy of the model of its own, on ``batches`` (default: made from the Trainer's datamodule).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        method: str,
        speeds: dict[str, list[float]],
        samples: Callable[[Trainer], int],
        batches: TensorEpochs | None = None,
    ) -> None:
        self.args, self.method, self.speeds, self.samples, self.batches = args, method, speeds, samples, batches

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        model = getattr(pl_module, "model", pl_module)  # (d) wraps the project's model
        hparams = {name: value for name, value in model.hparams.items() if not name.startswith("_")}
        batches = self.batches or TensorEpochs(self.args, trainer.datamodule)
        self.paired = PlainLoop(self.args, type(model)(**hparams), batches)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synchronize(pl_module.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        synchronize(pl_module.device)
        self.speeds[self.method].append(self.samples(trainer) / (time.perf_counter() - self.start))
        self.speeds["b"].append(self.paired.epoch())


def run_project(args: argparse.Namespace, data_dir: str) -> dict[str, list[float]]:
    """(c): scripts/fit.py's model, datamodule and Trainer, timed per training epoch, with (b) in between."""
    accelerator = "gpu" if args.device == "cuda" else "cpu"
    options = ["--accelerator", accelerator, "--devices", "1", "--precision", args.precision]
    options += ["--max_epochs", str(args.epochs), "--trainer.limit_val_batches", "0"]
    if args.samples:
        options += ["--trainer.limit_train_batches", str(-(-args.samples // args.batch_size))]
    options += ["--checkpoint.monitor", "train/loss", "--checkpoint.mode", "min"]  # no validation to monitor
    cli = build_cli(expand_short_flags([*fit_args(args, data_dir), *options]))
    speeds: dict[str, list[float]] = {"c": [], "b": []}

    def samples(trainer: Trainer) -> int:  # whole batches up to --samples
        return min(len(trainer.datamodule.train_set), trainer.num_training_batches * args.batch_size)

    cli.trainer.callbacks.append(PairedEpochs(args, "c", speeds, samples))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return speeds


class BareModule(LightningModule):
    """The project's network in the smallest LightningModule: its loss, and (b)'s optimizer and schedule."""

    def __init__(self, model: ImageClassifier, steps: int) -> None:
        super().__init__()
        self.model, self.steps = model, steps

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.model.criterion(self.model(x), y)

    def configure_optimizers(self) -> dict:
        hp = self.model.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=hp.lr, total_steps=self.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def run_bare(args: argparse.Namespace, data_dir: str) -> dict[str, list[float]]:
    """(d): bare Lightning on (b)'s batches, timed per training epoch, with (b) in between."""
    model, data = project_parts(args, data_dir)
    batches = TensorEpochs(args, data)  # (d) and (b) share them: one normalized copy of the images
    speeds: dict[str, list[float]] = {"d": [], "b": []}
    timer = PairedEpochs(args, "d", speeds, lambda trainer: len(batches.labels), batches)
    trainer = Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(BareModule(model, len(batches) * args.epochs), train_dataloaders=batches)
    return speeds


def peak_memory(device: str) -> float:
    """Peak memory of this process in MiB: the GPU's allocations on CUDA, else the resident set size."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


def worker(args: argparse.Namespace) -> None:
    """Run one method in this process and print its figures as one JSON line."""
    data_dir = os.environ["BENCHMARK_DATA_DIR"]
    run = {"a": run_tutorial, "b": run_tensors, "c": run_project, "d": run_bare}[args.worker]
    speeds = run(args, data_dir)
    print("BENCHMARK " + json.dumps({**speeds, "peak_mib": peak_memory(args.device)}), flush=True)


def measure(method: str, argv: list[str], data_dir: str, workdir: str) -> dict:
    """Start this script for one method in a fresh process and return its figures."""
    env = {**os.environ, "BENCHMARK_DATA_DIR": data_dir, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, __file__, *argv, "--worker", method]
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCHMARK ")]
    if result.returncode != 0 or not lines:
        sys.exit(f"error: method {method} failed:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("BENCHMARK "))


def main() -> int:
    """Run every method in turn for the given rounds, then print samples/s, peak memory and the ratios."""
    prepare_process()  # as scripts/fit.py: every method runs in a process set up as a run's
    args = parse_args()
    if args.worker:
        worker(args)
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA GPU is visible here; use --device cpu", file=sys.stderr)
        return 1
    if args.epochs < 2:
        print("error: --epochs must be at least 2: the first epoch of each process is warm-up", file=sys.stderr)
        return 2
    argv = [arg for arg in sys.argv[1:] if arg != "--generate"]
    with tempfile.TemporaryDirectory() as workdir:
        data_dir = str(generate(args.data, Path(workdir) / "data") if args.generate else Path(args.data_dir).resolve())
        figures: dict[str, list[dict]] = {method: [] for method in args.methods}
        for round_ in range(args.rounds):
            for method in args.methods:
                figures[method].append(measure(method, argv, data_dir, workdir))
                speeds = figures[method][-1][method][1:]
                print(f"round {round_ + 1}, {METHODS[method]}: {', '.join(f'{s:,.0f}' for s in speeds)} samples/s")
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(
        f"\n{args.model} on {args.data}{' (generated)' if args.generate else ''}, batch {args.batch_size}, "
        f"{args.precision}, {device}, torch {torch.__version__}; median over epochs (warm-up excluded)"
    )
    speed = {}
    for method in args.methods:
        speed[method] = statistics.median(s for run in figures[method] for s in run[method][1:])
        peak = max(run["peak_mib"] for run in figures[method])
        print(f"  ({method}) {METHODS[method]:32s} {speed[method]:10,.0f} samples/s   peak {peak:8,.0f} MiB")
    for method in "cd":
        if method in speed:
            pairs = [x / b for run in figures[method] for x, b in zip(run[method][1:], run["b"][1:], strict=True)]
            print(
                f"  {method}/b = {statistics.median(pairs):.2f}  (epoch by epoch, (b) alternating with ({method}) "
                f"in its process; range {min(pairs):.2f}-{max(pairs):.2f})"
            )
    for top, bottom in (("c", "b"), ("c", "a"), ("b", "a"), ("c", "d")):
        if top in speed and bottom in speed:
            print(f"  {top}/{bottom} = {speed[top] / speed[bottom]:.2f}  (medians of separate processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
