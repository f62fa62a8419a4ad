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
import sys

from cli.exits import run
from cli.flags import expand_short_flags
from cli.repeated_fits import run_all, script_parser


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's own options, and the rest: scripts/fit.py's."""
    parser = script_parser(__doc__, "cross_validation")
    parser.add_argument("--folds", type=int, default=5, help="Number of folds, at least 2 (default 5).")
    return parser.parse_known_args(argv)


def run_folds() -> int:
    """Run every fold, print the summary and write it as JSON; returns the exit code."""
    options, fit_args = parse_args(expand_short_flags(sys.argv[1:]))
    if options.folds < 2:
        print(f"error: --folds must be at least 2, got {options.folds}", file=sys.stderr)
        return 2
    folds = ["--data.folds", str(options.folds)]
    runs_args = [[*fit_args, *folds, "--data.fold", str(fold)] for fold in range(options.folds)]
    title = f"{options.folds}-fold cross-validation"
    return run_all(runs_args, title, {"folds": options.folds}, options.output, "cross_validation")


def main() -> int:
    """The command: ``run_folds`` in a prepared process; returns the exit code."""
    return run(run_folds)
