"""The same training run with several seeds, then the mean ± std of every metric: how much of a difference is noise.

Each seed is trained, validated (best checkpoint) and tested as scripts/fit.py would, as its own run
folder; only the training seed (--seed: initial weights, batch order, augmentation) changes, not the
data split (--data.seed). Every other option is scripts/fit.py's (`python scripts/fit.py --help`).

Examples:
    python scripts/seeds.py --seeds 5 --config configs/digits.yaml
    python scripts/seeds.py --seeds 3 --config configs/mnist_cnn.yaml --model.ema_decay 0.999
"""

import argparse
import sys

from cli.exits import run
from cli.flags import expand_short_flags
from cli.repeated_fits import run_all, script_parser


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's own options, and the rest: scripts/fit.py's."""
    parser = script_parser(__doc__, "seeds")
    parser.add_argument("--seeds", type=int, default=5, help="Number of runs, at least 2 (default 5).")
    parser.add_argument("--first_seed", type=int, default=0, help="The seed of the first run; the next add 1 each.")
    # Taken here only to be refused: each run's seed is --first_seed + n, and fit.py's would be overridden.
    parser.add_argument("--seed_everything", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_known_args(argv)


def run_seeds() -> int:
    """Run every seed, print the summary and write it as JSON; returns the exit code."""
    options, fit_args = parse_args(expand_short_flags(sys.argv[1:]))
    if options.seeds < 2:
        print(f"error: --seeds must be at least 2, got {options.seeds}", file=sys.stderr)
        return 2
    if options.seed_everything is not None:
        first = options.seed_everything
        print(
            f"error: --seed {first}: seeds.py seeds each run itself; to start at {first}, give --first_seed {first}",
            file=sys.stderr,
        )
        return 2
    seeds = list(range(options.first_seed, options.first_seed + options.seeds))
    runs_args = [[*fit_args, "--seed_everything", str(seed)] for seed in seeds]
    title = f"{options.seeds} seeds ({seeds[0]}-{seeds[-1]})"
    return run_all(runs_args, title, {"seeds": seeds}, options.output, "seeds")


def main() -> int:
    """The command: ``run_seeds`` in a prepared process; returns the exit code."""
    return run(run_seeds)
