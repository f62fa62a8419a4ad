"""What the commands that run scripts/fit.py several times share: each fit evaluated, then every metric's mean ± std."""

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch.distributed as dist
from torch import Tensor

from cli.calibration import load_weights, split_logits
from cli.errors import USER_ERRORS
from cli.exits import stopped_code
from cli.fitting import calibrated, fit, tested_checkpoint
from cli.parser import FitCLI, build_cli, validates
from cli.run_folders import relative
from loggers.lightning_messages import CHECKPOINT_LOADED, lightning_messages_dropped


def fitted(cli: FitCLI) -> str | None:
    """Run scripts/fit.py's training of a built command line; returns the checkpoint it tests: the best one, or
    ``last.ckpt`` without validation, or its calibrated copy with ``--calibrate`` (None where checkpointing is off)."""
    checkpoint, _ = calibrated(cli, tested_checkpoint(cli.trainer, fit(cli)))
    return checkpoint


def fit_and_evaluate(fit_args: list[str]) -> tuple[str, dict[str, float]]:
    """One run of scripts/fit.py; returns its folder and the val and test metrics of the checkpoint it tests
    (see ``fitted``; without validation there are no val metrics)."""
    cli = build_cli(fit_args)
    checkpoint = fitted(cli)
    metrics: dict[str, float] = {}
    with lightning_messages_dropped(*CHECKPOINT_LOADED):
        if validates(cli.datamodule.hparams):
            (validated,) = cli.trainer.validate(
                cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint, verbose=False
            )
            metrics.update(validated)
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=checkpoint, verbose=False)
    # Not test's return value: it leaves out the per-class accuracies, which are kept out of the loggers.
    tested = {name: value for name, value in cli.trainer.callback_metrics.items() if name.startswith("test/")}
    return cli.trainer.log_dir, {**metrics, **tested}


def held_out_probabilities(cli: FitCLI, checkpoint: str | None) -> tuple[Tensor, Tensor]:
    """The class probabilities that the checkpoint's model (without one, the model as trained) gives the images of
    the validation part, with their labels, in the part's order, on every DDP process.

    In a fold of a cross-validation, those are the images the model was not trained on: out-of-sample
    probabilities (for scripts/find_label_issues.py).
    """
    if checkpoint is not None:
        load_weights(cli.model, checkpoint)
    logits, labels = split_logits(cli.trainer, cli.model, cli.datamodule, "val")
    return logits.softmax(dim=-1), labels


def script_parser(description: str, prefix: str) -> argparse.ArgumentParser:
    """The parser of a command that fits several times, with its ``--output`` option; the command adds its own."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"JSON file for the results; default: {prefix}_<first run>.json next to the run folders.",
    )
    return parser


def summarize(results: list[dict[str, float]]) -> dict[str, dict[str, float | list[float]]]:
    """Mean, standard deviation (n - 1) and the per-run values of every metric that every run has.

    A run leaves out a metric that its data leaves undefined (the accuracy of a class its fold lacks).
    """
    return {
        name: {**mean_std(values), "values": values}
        for name in results[0]
        if all(name in result for result in results) and (values := [float(result[name]) for result in results])
    }


def mean_std(values: list[float]) -> dict[str, float]:
    """The mean and standard deviation (n - 1) of ``values``: NaN when one is not finite (a run that diverged).

    ``statistics`` sums exactly, in fractions, and fails on NaN and infinities rather than returning NaN.
    """
    if not all(math.isfinite(value) for value in values):
        return {"mean": math.nan, "std": math.nan}
    return {"mean": statistics.mean(values), "std": statistics.stdev(values)}


def run_all(runs_args: list[list[str]], title: str, record: dict[str, Any], output: Path | None, prefix: str) -> int:
    """Fit once per entry of ``runs_args``, print the mean ± std of every metric and write them as JSON.

    Args:
        runs_args: scripts/fit.py's arguments for each run.
        title: What the summary's first line calls the whole (``3-fold cross-validation``).
        record: What the JSON file says of the whole before the runs and metrics (``{"folds": 3}``).
        output: The JSON file; default: ``<prefix>_<first run>.json`` next to the run folders.
        prefix: The default file name's start.

    Returns:
        The exit code: 0, or that of the one-line error that stopped a run.
    """
    start = time.perf_counter()
    runs, results = [], []
    try:
        for fit_args in runs_args:
            run, metrics = fit_and_evaluate(fit_args)
            runs.append(run)
            results.append(metrics)
    except (*USER_ERRORS, RuntimeError) as err:  # RuntimeError: under DDP, another process ended, and said why
        return stopped_code(err)
    if dist.is_initialized() and dist.get_rank() != 0:  # under DDP, global rank 0 writes and prints the summary
        return 0
    seconds = time.perf_counter() - start
    summary = summarize(results)
    output = output or Path(runs[0]).parent / f"{prefix}_{Path(runs[0]).name}.json"
    record = {**record, "runs": [relative(run) for run in runs], "seconds": seconds, "metrics": summary}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{title}, {seconds:.0f} s; runs {', '.join(record['runs'])}")
    width = max(map(len, summary))
    for name, stats in summary.items():
        if "class_acc/" not in name:  # one line per class (val_class_acc/, test/class_acc/): they are in the file
            print(f"  {name:<{width}}  {stats['mean']:.4f} ± {stats['std']:.4f}")
    print(f"Results: {relative(output)}")
    return 0
