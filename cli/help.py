"""The help of scripts/fit.py: its examples as written, plain group headings, short lists of known classes."""

import argparse
import re
import textwrap

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningArgumentParser

from cli.flags import BUILT_IN, SHORT_FLAGS

FIT_USAGE = """Train an image classifier, then test its best checkpoint on the test split.

Examples:
    python scripts/fit.py                                    # the MLP on MNIST
    python scripts/fit.py --config configs/digits.yaml       # offline, on scikit-learn's bundled digits
    python scripts/fit.py --model CNN --data CIFAR10 --accelerator gpu --devices 2 --precision 16-mixed
    python scripts/fit.py --model my_file.MyNet              # your own ImageClassifier subclass
    python scripts/fit.py --print_config > run.yaml          # every option, as a file for --config
    python scripts/fit.py --config configs/digits.yaml --name first-try  # the run folder lightning_logs/first-try
    python scripts/fit.py --config lightning_logs/digits-cnn-1/config.yaml --ckpt_path last   # resume that run
    (installed with pip, the same command is also lic-fit: lic-fit --config configs/digits.yaml)
"""
FIT_DESCRIPTION = (
    FIT_USAGE
    + textwrap.fill("Short flags: " + ", ".join(f"{short} = {full}" for short, full in SHORT_FLAGS.items()), 100)
    + f".\nModels: {', '.join(BUILT_IN['model'])}, or the import path of an ImageClassifier subclass."
    + f"\nData: {', '.join(BUILT_IN['data'])}, or the import path of a ClassificationDataModule subclass."
    + "\n`--model.help CNN` and `--data.help ImageFolder` list a class's options."
)

# Known subclasses from these packages are counted, not listed: nn.Module alone has about 700 of them.
LIBRARIES = ("torch", "torchvision", "torchmetrics", "lightning")
MOST_LISTED = 12


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: ``code`` and :role:`target` become their text."""
    return re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``|`([^`]+)`", lambda m: next(g for g in m.groups() if g), text)


def shorter_subclass_list(help_text: str) -> str:
    """``help_text`` with a long "known subclasses" list cut to the classes that are not from ``LIBRARIES``."""
    match = re.search(r", known subclasses: ([^)]*)\)$", help_text)
    if match is None:
        return help_text
    paths = match[1].split(", ")
    if len(paths) <= MOST_LISTED:
        return help_text
    own = [path for path in paths if path.split(".")[0] not in LIBRARIES]
    others = f"{len(paths) - len(own)} more from {', '.join(LIBRARIES)}: any by class name or import path"
    return help_text[: match.start()] + f", known subclasses: {', '.join([*own, others])})"


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with the description's lines kept as written (its Examples block was run into one
    paragraph), no reStructuredText markup, and long lists of known subclasses cut short."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return argparse.RawDescriptionHelpFormatter._fill_text(self, text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        return shorter_subclass_list(plain(super()._get_help_string(action)))

    def start_section(self, heading: str | None) -> None:
        super().start_section(plain(heading) if heading else heading)


class FitArgumentParser(LightningArgumentParser):
    """LightningCLI's parser with :class:`HelpFormatter`, also for the help of one class (``--model.help CNN``),
    for which jsonargparse makes a new parser of this type."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
