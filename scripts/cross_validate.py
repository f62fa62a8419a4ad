#!/usr/bin/env python
"""K-fold cross-validation: one model per stratified fold, then the mean ± std of every metric.

The training data (training and validation parts) is split into --folds stratified folds; each fold
in turn is the validation part, and each fold is trained, validated (best checkpoint) and tested as
scripts/fit.py would, as its own run folder (its own TensorBoard run). Every other option is
scripts/fit.py's (`python scripts/fit.py --help`); the test split stays the same for every fold.

Examples:
    python scripts/cross_validate.py --folds 5 --config configs/digits.yaml --max_epochs 5
    python scripts/cross_validate.py --folds 3 --model MLP --data Digits --model.dropout 0.2
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch.distributed as dist
from fit import USER_ERRORS, build_cli, expand_short_flags, fit, relative, report, run, stopped_peer_code


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's own options, and the rest: scripts/fit.py's."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--folds", type=int, default=5, help="Number of folds, at least 2 (default 5).")
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file for the results; default: cross_validation_<first fold's run>.json next to the run folders.",
    )
    return parser.parse_known_args(argv)


def run_fold(fit_args: list[str], folds: int, fold: int) -> tuple[str, dict[str, float]]:
    """Fit on all folds but ``fold``; returns the run folder and the best checkpoint's val and test metrics."""
    cli = build_cli([*fit_args, "--data.folds", str(folds), "--data.fold", str(fold)])
    best = fit(cli)
    ckpt = best or None
    (validated,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)
    # Not test's return value: it leaves out the per-class accuracies, which are kept out of the loggers.
    tested = {name: value for name, value in cli.trainer.callback_metrics.items() if name.startswith("test/")}
    return cli.trainer.log_dir, {**validated, **tested}


def summarize(results: list[dict[str, float]]) -> dict[str, dict[str, float | list[float]]]:
    """Mean, standard deviation (n - 1) and the per-fold values of every metric that every fold has.

    A fold leaves out a metric that its data leaves undefined (the accuracy of a class it lacks).
    """
    return {
        name: {"mean": statistics.mean(values), "std": statistics.stdev(values), "values": values}
        for name in results[0]
        if all(name in result for result in results) and (values := [float(result[name]) for result in results])
    }


def main() -> int:
    """Run every fold, print the summary and write it as JSON; returns the exit code."""
    options, fit_args = parse_args(expand_short_flags(sys.argv[1:]))
    if options.folds < 2:
        print(f"error: --folds must be at least 2, got {options.folds}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    runs, results = [], []
    try:
        for fold in range(options.folds):
            run, metrics = run_fold(fit_args, options.folds, fold)
            runs.append(run)
            results.append(metrics)
    except USER_ERRORS as err:
        return report(err)
    except RuntimeError as err:  # under DDP: another process ended, and said why
        if (code := stopped_peer_code(err)) is None:
            raise
        return code
    if dist.is_initialized() and dist.get_rank() != 0:  # under DDP, global rank 0 writes and prints the summary
        return 0
    seconds = time.perf_counter() - start
    summary = summarize(results)
    output = options.output or Path(runs[0]).parent / f"cross_validation_{Path(runs[0]).name}.json"
    record = {"folds": options.folds, "runs": [relative(run) for run in runs], "seconds": seconds, "metrics": summary}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\n{options.folds}-fold cross-validation, {seconds:.0f} s; runs {', '.join(record['runs'])}")
    width = max(map(len, summary))
    for name, stats in summary.items():
        print(f"  {name:<{width}}  {stats['mean']:.4f} ± {stats['std']:.4f}")
    print(f"Results: {relative(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
