"""Export a checkpoint as a plain state_dict, TorchScript or ONNX, each checked against the checkpoint's outputs.

Every export computes the network's logits divided by the checkpoint's temperature (1 unless
scripts/calibrate.py fitted one), so that their softmax gives calibrated probabilities. Each export
is loaded back and run on the same inputs as the checkpoint's model: random inputs (the default), or
every image of the test split with --check test. The command fails if any logit differs by more
than --atol.

Examples:
    python scripts/export.py --ckpt_path lightning_logs/mnist-mlp-1/checkpoints/last.ckpt
    python scripts/export.py --ckpt_path CKPT --formats state_dict torchscript onnx --check test --output_dir exported
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ArgumentParser
from torch import Tensor

from cli.errors import CommandError
from cli.exits import run_command
from cli.trained import CKPT_HELP, add_data_arguments, batches, data_from, parse
from models import ImageClassifier
from models.calibration import calibrated

FORMATS = {"state_dict": ".pth", "torchscript": ".pt", "onnx": ".onnx"}
Runner = Callable[[Tensor], Tensor]


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--ckpt_path", type=str, required=True, help=CKPT_HELP)
    parser.add_argument(
        "--formats",
        type=Literal["state_dict", "torchscript", "onnx"],
        nargs="+",
        default=["state_dict", "torchscript"],
        help="Any of state_dict (torch.save of the weights: rebuild the model with the run's hparams.yaml, then "
        "load_state_dict, and divide its logits by its temperature buffer), torchscript (torch.jit.load, no "
        "Python code needed) and onnx (needs pip install -e "
        "'.[onnx]'; checked with onnxruntime).",
    )
    parser.add_argument(
        "--output_dir",
        type=str | None,
        default=None,
        help="Where to write the files; default: the checkpoint's folder.",
    )
    parser.add_argument(
        "--check",
        type=Literal["random", "test"],
        default="random",
        help="Inputs of the check: random (64 random images; no data needed) or test (the test split of --data).",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-4,
        help="Largest difference allowed between an export's and the checkpoint's logits.",
    )
    add_data_arguments(parser)
    return parser


def export_state_dict(model: ImageClassifier, path: Path) -> Runner:
    """``torch.save(model.state_dict())``, as in the tutorials (``temperature`` among the weights); returns the
    model rebuilt from it, its logits divided by that temperature."""
    torch.save(model.state_dict(), path)
    rebuilt = type(model).from_hparams(model.hparams)
    rebuilt.load_state_dict(torch.load(path, weights_only=True))
    return calibrated(rebuilt)


def export_torchscript(model: ImageClassifier, path: Path) -> Runner:
    """A traced TorchScript module of the calibrated logits; returns it as ``torch.jit.load`` reads it."""
    calibrated(model).to_torchscript(path, method="trace", example_inputs=model.example_input_array)
    return torch.jit.load(path)


def export_onnx(model: ImageClassifier, path: Path) -> Runner:
    """An ONNX graph of the calibrated logits with a variable batch size; returns an onnxruntime session's run."""
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  # torch.onnx's exporter needs it
    except ImportError as err:
        raise CommandError(
            f"the ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({err}): "
            "pip install -e '.[onnx]', or leave onnx out of --formats"
        ) from None
    calibrated(model).to_onnx(
        path,
        model.example_input_array,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=False,  # the weights in the .onnx file itself, not in a second file beside it
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


EXPORTERS = {"state_dict": export_state_dict, "torchscript": export_torchscript, "onnx": export_onnx}


@torch.no_grad()
def compare(model: ImageClassifier, runners: dict[str, Runner], inputs: Iterable[Tensor]) -> dict[str, tuple]:
    """For each export: the largest difference from ``model``'s logits divided by its temperature, the inputs of
    the same class, all inputs."""
    stats = {name: [0.0, 0, 0] for name in runners}
    for x in inputs:
        expected = calibrated(model)(x)
        for name, run in runners.items():
            logits = run(x)
            stats[name][0] = max(stats[name][0], (logits - expected).abs().max().item())
            stats[name][1] += int((logits.argmax(1) == expected.argmax(1)).sum())
            stats[name][2] += len(x)
    return {name: tuple(values) for name, values in stats.items()}


def export_checkpoint(args: list[str]) -> None:
    """Write the exports, check them, print one line per export."""
    parser = build_parser()
    config, checkpoint = parse(parser, args)
    model = checkpoint.model
    if config.check == "test":
        data = data_from(config, parser, checkpoint)
        inputs: Iterable[Tensor] = (x for x, _ in batches(data))
    else:
        inputs = torch.randn(64, *model.hparams.input_shape, generator=torch.Generator().manual_seed(0)).split(16)
    output_dir = Path(config.output_dir or checkpoint.path.parent)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: output_dir / (checkpoint.path.stem + FORMATS[name]) for name in config.formats}
    runners = {name: EXPORTERS[name](model, path) for name, path in paths.items()}
    worst = 0.0
    for name, (difference, same, total) in compare(model, runners, inputs).items():
        size = paths[name].stat().st_size / 2**20
        print(
            f"{name:<12} {paths[name]} ({size:.2f} MiB): largest logit difference {difference:.1e} "
            f"(tolerance {config.atol:g}), same class on {same:,} of {total:,} {config.check} inputs"
        )
        worst = max(worst, difference)
    if worst > config.atol:
        raise CommandError(f"an export differs from the checkpoint by {worst:.1e}, more than --atol {config.atol:g}")


def main() -> int:
    """The command: ``export_checkpoint`` on the command line's arguments; returns the exit code."""
    return run_command(export_checkpoint)
