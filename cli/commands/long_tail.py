"""Build a long-tailed image folder from a balanced one, as the CIFAR-10-LT and CIFAR-100-LT benchmarks are built
(Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"): class c of k, in name
order, keeps the first floor(n * ratio^(-c / (k - 1))) of its training images (n: the smallest class's count),
so that the first class has ``ratio`` times the images of the last. val/ and test/ stay whole, so they measure
every class alike. The new folder is made of hard links (copies only across file systems): it takes no space.

Examples:
    unzip -q ../shared/data/cifar10-jpg.zip -d /tmp/cifar10-jpg
    python scripts/long_tail.py /tmp/cifar10-jpg /tmp/cifar10-lt --ratio 100     # CIFAR-10-LT: 12,406 images
    python scripts/fit.py --config configs/cifar10_cpu.yaml --data.root /tmp/cifar10-lt
"""

from pathlib import Path

from jsonargparse import ArgumentParser

from cli.exits import run_command
from datamodules.long_tail import link_long_tailed


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("source", type=str, help="The balanced image folder: SOURCE/train/<class name>/<images>.")
    parser.add_argument("output", type=str, help="The new folder, which must not exist or be empty.")
    parser.add_argument(
        "--ratio", type=float, default=100.0, help="The first class's image count over the last's (default 100)."
    )
    return parser


def long_tail(argv: list[str]) -> None:
    """Build the folder and print each split's size."""
    options = build_parser().parse_args(argv)
    counts = link_long_tailed(Path(options.source), Path(options.output), options.ratio)
    copied = counts.pop("copied")["images"]
    for split, per_class in counts.items():
        sizes = ", ".join(f"{name} {count:,}" for name, count in per_class.items())
        print(f"{options.output}/{split}: {sum(per_class.values()):,} images ({sizes})")
    if copied:
        print(f"{copied:,} images copied: {options.output} is on another file system than {options.source}")


def main() -> int:
    """The command: ``long_tail`` on the command line's arguments; returns the exit code."""
    return run_command(long_tail)
