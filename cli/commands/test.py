"""Evaluate a checkpoint on a datamodule's test split, or on a folder of labelled images; write the metrics as JSON.

Examples:
    python scripts/test.py --ckpt_path lightning_logs/mnist-mlp-1/checkpoints/last.ckpt    # the data it was trained on
    python scripts/test.py --ckpt_path CKPT --data.data_dir ../shared/data --data.download false
    python scripts/test.py --ckpt_path CKPT --data ImageFolder --data.root new_photos     # the same classes
    python scripts/test.py --ckpt_path CKPT --images my_test_images                      # my_test_images/<class>/*.png
"""

import sys
from pathlib import Path

from jsonargparse import ArgumentParser

from callbacks import SaveTestMetrics
from cli.errors import CommandError
from cli.exits import run_command
from cli.reports import print_class_report
from cli.trained import (
    CKPT_HELP,
    add_data_arguments,
    add_precision_argument,
    add_tta_argument,
    checked_data,
    data_from,
    inference_trainer,
    listed,
    parse,
    with_tta,
)
from datamodules import ImageFiles
from datamodules.names import shown_name


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--ckpt_path", type=str, required=True, help=CKPT_HELP)
    add_data_arguments(parser)
    parser.add_argument(
        "--images",
        type=str | None,
        default=None,
        help="Test on this folder of labelled images instead, one subfolder per class named as the checkpoint's "
        "classes (FOLDER/<class name>/*.png); any size or colour mode: they are converted as in training.",
    )
    parser.add_argument(
        "--json",
        type=str | None,
        default=None,
        help="Where to write the metrics; default: next to the checkpoint, as <checkpoint name>.test_metrics.json.",
    )
    parser.add_argument("--accelerator", type=str, default="auto", help="cpu, gpu or auto (a GPU when there is one).")
    add_tta_argument(parser)
    add_precision_argument(parser)
    return parser


def test_checkpoint(args: list[str]) -> None:
    """Test the checkpoint, print the metrics and where they are written."""
    parser = build_parser()
    config, checkpoint = parse(parser, args)
    if config.images is not None:
        prep = checkpoint.preprocessing
        data = checked_data(ImageFiles([config.images], **prep), checkpoint)
        data.setup("test")
        unlabelled = [path for path, label in zip(data.files, data.test_set.labels, strict=True) if label < 0]
        if unlabelled:
            raise CommandError(
                f"{len(unlabelled)} image(s), such as {shown_name(unlabelled[0])}, are not in a folder named after a "
                f"class of the checkpoint ({listed(prep['class_names'])}): put each in FOLDER/<class name>/"
            )
        for path, reason in data.skipped:
            print(f"skipped {shown_name(path)}: {reason}", file=sys.stderr)
    else:
        data = data_from(config, parser, checkpoint)
    json_path = Path(config.json or checkpoint.path.with_suffix(".test_metrics.json"))
    report_name = json_path.name.removesuffix(".json").removesuffix(".test_metrics")
    trainer = inference_trainer(
        checkpoint,
        config,
        default_root_dir=json_path.parent,
        callbacks=[saver := SaveTestMetrics(json_path.name, f"{report_name}.classification_report.txt")],
        enable_progress_bar=True,
    )
    trainer.test(with_tta(checkpoint, config.tta), datamodule=data, ckpt_path=str(checkpoint.path))
    print_class_report(saver)
    print(f"Test metrics: {json_path}")
    if saver.report_path is not None:
        print(f"Class report: {saver.report_path}")


def main() -> int:
    """The command: ``test_checkpoint`` on the command line's arguments; returns the exit code."""
    return run_command(test_checkpoint)
