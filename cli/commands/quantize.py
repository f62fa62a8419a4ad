"""Quantize a checkpoint to int8 for the CPU and compare it with the float model: accuracy, size, latency.

Methods (torch.ao.quantization):
    dynamic: the weights of the Linear layers stored as int8, activations quantized on the fly; no data
             needed to quantize; suits the MLP, whose work is all in Linear layers.
    static:  weights and activations int8 (FX graph mode: convolutions, Linear, ReLU and pooling fused and
             quantized), the activation ranges calibrated on --calibration_batches training batches; suits the CNN.
    qat:     quantization-aware training (FX graph mode, as static): the network fine-tuned for --qat_epochs
             epochs with fake-quantized weights and activations by a Trainer on the training data, then
             converted to int8; printed beside the float model and static quantization.

Accuracy is measured on the test split of --data (default: the checkpoint's datamodule), latency as
the median of --latency_runs forward passes of --latency_batch_size test images on the CPU.

Examples:
    python scripts/quantize.py --ckpt_path lightning_logs/mnist-mlp-1/checkpoints/last.ckpt
    python scripts/quantize.py --ckpt_path CNN_CKPT --method static
    python scripts/quantize.py --ckpt_path CNN_CKPT --method qat --qat_epochs 1
"""

import copy
import io
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Literal

import torch
from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch import Trainer
from torch import Tensor, nn
from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from callbacks import ProgressLog
from cli.errors import CommandError
from cli.exits import run_command
from cli.trained import CKPT_HELP, add_data_arguments, batches, data_from, parse
from datamodules import ClassificationDataModule
from models import ImageClassifier
from models.calibration import TemperatureScaled
from models.qat import QuantizationAwareTraining


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--ckpt_path", type=str, required=True, help=CKPT_HELP)
    parser.add_argument("--method", type=Literal["dynamic", "static", "qat"], default="dynamic", help="See above.")
    parser.add_argument("--qat_epochs", type=int, default=1, help="Epochs of quantization-aware fine-tuning.")
    parser.add_argument(
        "--qat_lr", type=float, default=1e-4, help="Learning rate of the quantization-aware fine-tuning."
    )
    parser.add_argument(
        "--qat_batches", type=int | None, default=None, help="Training batches per QAT epoch; default: all."
    )
    parser.add_argument(
        "--calibration_batches", type=int, default=20, help="Training batches that calibrate the static method."
    )
    parser.add_argument("--latency_batch_size", type=int, default=1, help="Images per forward pass timed.")
    parser.add_argument("--latency_runs", type=int, default=200, help="Forward passes timed (after 20 warm-up passes).")
    add_data_arguments(parser)
    return parser


def quantization_aware(model: ImageClassifier, data: ClassificationDataModule, config: Namespace) -> nn.Module:
    """The int8 model after ``config.qat_epochs`` epochs of fine-tuning with fake quantization, on the CPU."""
    wrapper = QuantizationAwareTraining(copy.deepcopy(model), config.qat_lr)
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=config.qat_epochs,
        limit_train_batches=config.qat_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[ProgressLog()],  # a line per epoch: fine-tuning can take minutes
    )
    trainer.fit(wrapper, datamodule=data)
    return wrapper.int8()


def quantize(
    model: ImageClassifier, method: str, data: ClassificationDataModule, calibration_batches: int
) -> nn.Module:
    """The int8 model for the CPU's quantized engine (x86 or qnnpack, torch's default for this machine)."""
    if method == "dynamic":
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    example = model.example_input_array
    prepared = prepare_fx(model, get_default_qconfig_mapping(torch.backends.quantized.engine), (example,))
    with torch.no_grad():
        for (x, _), _ in zip(batches(data, "fit"), range(calibration_batches), strict=False):
            prepared(x)  # the observers record the range of every activation
    return convert_fx(prepared)


@torch.no_grad()
def accuracy(model: Callable[[Tensor], Tensor], data: ClassificationDataModule) -> float:
    """Top-1 accuracy on the test split."""
    correct = total = 0
    for x, y in batches(data):
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / total


def size_mib(model: nn.Module) -> float:
    """Size of ``torch.save(model.state_dict())``, in MiB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 2**20


@torch.no_grad()
def latency_ms(model: Callable[[Tensor], Tensor], x: Tensor, runs: int) -> float:
    """Median wall time of a forward pass on ``x``, in milliseconds."""
    for _ in range(20):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


# Models whose activations do not survive int8 (static and qat), with why: refused rather than measured.
NOT_STATIC = {
    "Airbench94": "its frozen whitening layer and BatchNorm without scale (FX graph mode cannot trace its float32 "
    "whitening, and with that off its int8 model fell from 99.38% to 11.35% on MNIST)",
    "Pretrained": "its resize of the images to the backbone's input size (antialiased bilinear) has no int8 kernel",
}


def check_method(model: ImageClassifier, method: str) -> None:
    """Refuse ``static`` and ``qat`` for the models that int8 activations break (``NOT_STATIC``), naming the rest."""
    name = type(model).__name__
    if method != "dynamic" and name in NOT_STATIC:
        raise CommandError(
            f"--method {method} cannot quantize {name}: {NOT_STATIC[name]}; it quantizes MLP, CNN and ResNet9 "
            "(and models like them); use --method dynamic, or keep the float32 model"
        )


def quantize_checkpoint(args: list[str]) -> None:
    """Quantize, measure both models, print the comparison."""
    # torch.ao.quantization warns that it is deprecated at nearly every call (README's Quantize section says why
    # it is used): about 20 lines that would bury the table.
    warnings.filterwarnings("ignore", module=r"torch\.ao\.")
    parser = build_parser()
    config, checkpoint = parse(parser, args)
    model = checkpoint.model
    check_method(model, config.method)
    data = data_from(config, parser, checkpoint)
    methods = ["static", "qat"] if config.method == "qat" else [config.method]
    quantized = {
        f"int8 {method}": quantization_aware(model, data, config)
        if method == "qat"
        else quantize(model, method, data, config.calibration_batches)
        for method in methods
    }
    sample = next(batches(data))[0][: config.latency_batch_size]
    # The logits of each divided by the checkpoint's temperature, as predict.py's and the exports' are.
    nets = {name: TemperatureScaled(net, model.temperature) for name, net in {"float32": model, **quantized}.items()}
    rows = {
        name: (accuracy(net, data), size_mib(net), latency_ms(net, sample, config.latency_runs))
        for name, net in nets.items()
    }
    print(f"{'model':<18}{'test accuracy':>15}{'size':>12}{f'latency, batch {len(sample)}':>22}")
    for name, (acc, size, latency) in rows.items():
        print(f"{name:<18}{acc:>15.2%}{size:>8.2f} MiB{latency:>19.3f} ms")
    (acc0, size0, latency0), *others = rows.values()
    for name, (acc1, size1, latency1) in zip(list(rows)[1:], others, strict=True):
        change = f"{(acc1 - acc0) * 100:+.2f} pts"
        print(f"{'vs float32':<18}{change:>15}{size1 / size0:>11.2f}x{latency1 / latency0:>21.2f}x  ({name})")


def main() -> int:
    """The command: ``quantize_checkpoint`` on the command line's arguments; returns the exit code."""
    return run_command(quantize_checkpoint)
