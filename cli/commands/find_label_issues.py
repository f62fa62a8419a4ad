"""Find the images whose label is likely wrong: out-of-sample class probabilities, ranked by cleanlab.

The training split (training and validation parts) is ranked by k-fold cross-validation: each of --folds
stratified folds is held out in turn, a model is trained on the rest as scripts/fit.py trains one (every
option of scripts/fit.py: `python scripts/fit.py --help`; each fold a run folder of its own), and its best
checkpoint gives the held-out images their probabilities. Another split (test, or val) is ranked with
a checkpoint trained on the training split (--ckpt), which has not seen it; --data.* options then change
the checkpoint's data, as for scripts/test.py.

Each fold's probabilities are saved as it ends (OUTPUT/folds/fold-N.npz): run the same command again to
rank again without training, or to go on after a run that was stopped during the folds (the folds saved
are not trained again). cleanlab's confident learning flags the images, ranked by the probability of the
given label; OUTPUT gets label_issues.csv (one row per flagged image, best candidates first), label_issues.png
(the first --sheet_images, each titled `given -> suggested (probability)`, also in TensorBoard: an events file
in OUTPUT), probabilities.npz and summary.json. Needs cleanlab: pip install -e ".[labels]".

Examples:
    python scripts/find_label_issues.py --config configs/digits.yaml --folds 5
    python scripts/find_label_issues.py --data ImageFolder --data.root my_images --model CNN --max_epochs 10
    python scripts/find_label_issues.py --ckpt lightning_logs/mnist-airbench94-1 --split test
"""

import argparse
import json
import sys
from pathlib import Path

import torch.distributed as dist
from jsonargparse import ArgumentParser

from cli.calibration import split_logits
from cli.errors import USER_ERRORS, CommandError
from cli.exits import report, run, stopped_code
from cli.flags import expand_short_flags
from cli.label_issues import (
    Probabilities,
    check_cleanlab,
    rank_label_issues,
    summary,
    summary_lines,
    write_contact_sheet,
    write_csv,
)
from cli.parser import FitCLI, build_cli
from cli.repeated_fits import fitted, held_out_probabilities
from cli.run_folders import relative, run_prefix, runs_folder, versioned_logger
from cli.trained import (
    add_data_arguments,
    add_precision_argument,
    add_tta_argument,
    data_from,
    inference_trainer,
    load_checkpoint,
    with_tta,
)
from datamodules import ClassificationDataModule


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This command's own options, and the rest: scripts/fit.py's (with --ckpt, those of the data)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--folds", type=int, default=5, help="Folds of the cross-validation, at least 2 (default 5).")
    parser.add_argument(
        "--ckpt",
        help="Rank another split (--split test or val) with this checkpoint of scripts/fit.py, trained on the "
        "training split: a .ckpt file, or a run's folder or name (its best checkpoint).",
    )
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        help="The split to rank: train (k-fold cross-validation, the default), or test or val (with --ckpt, "
        "the default test).",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="Folder for the results; default: lightning_logs/label_issues-DATA-MODEL (k-fold), or the "
        "checkpoint's run folder's label_issues-SPLIT.",
    )
    parser.add_argument(
        "--sheet_images", type=int, default=64, help="How many flagged images the contact sheet shows (default 64)."
    )
    options, rest = parser.parse_known_args(argv)
    options.split = options.split or ("test" if options.ckpt else "train")
    if options.sheet_images < 0:
        raise CommandError(f"--sheet_images must be 0 or more, got {options.sheet_images}")
    if options.folds < 2:
        raise CommandError(f"--folds must be at least 2, got {options.folds}")
    if options.ckpt and options.split == "train":
        raise CommandError(
            "--split train with --ckpt: the checkpoint's model was trained on those images, so its probabilities "
            "are not out-of-sample; leave out --ckpt to rank them by k-fold cross-validation"
        )
    if not options.ckpt and options.split != "train":
        raise CommandError(
            f"--split {options.split} needs --ckpt: a checkpoint trained on the training split to predict it "
            "(without one, the training split is ranked by k-fold cross-validation)"
        )
    return options, rest


def fold_args(fit_args: list[str], folds: int, fold: int) -> list[str]:
    """scripts/fit.py's options for the fold ``fold`` of ``folds``."""
    return [*fit_args, "--data.folds", str(folds), "--data.fold", str(fold)]


def saved_folds(folder: Path, settings: dict) -> dict[int, Probabilities]:
    """The folds whose probabilities ``folder`` holds already; refuses those of other options."""
    saved = {}
    for fold in range(settings["folds"]):
        path = folder / f"fold-{fold}.npz"
        if path.is_file():
            probabilities, theirs = Probabilities.load(path)
            if theirs != settings:
                raise CommandError(
                    f"{relative(folder)} holds the folds of other options ({theirs['folds']} folds of "
                    f"{' '.join(theirs['options']) or 'the defaults'}): give the same options to go on, or "
                    "another --output"
                )
            saved[fold] = probabilities
    return saved


def fold_probabilities(options: argparse.Namespace, fit_args: list[str]) -> tuple[Probabilities, FitCLI, Path] | None:
    """The out-of-sample probabilities of the training split, fold by fold, each saved as it ends; the first fold's
    command line (its data serves the contact sheet) and the output folder. None on DDP processes other than the
    first."""
    first = build_cli(fold_args(fit_args, options.folds, 0))
    logger = versioned_logger(first.config)
    runs = runs_folder(first.config, logger) if logger is not None else Path("lightning_logs")
    output = options.output or runs / f"label_issues-{run_prefix(first.config)}"
    settings = {"folds": options.folds, "options": fit_args}
    parts = saved_folds(output / "folds", settings)
    for fold in range(options.folds):
        path = output / "folds" / f"fold-{fold}.npz"
        if fold in parts:
            print(f"Fold {fold + 1} of {options.folds}: trained before, its probabilities read from {relative(path)}")
            continue
        cli = first if fold == 0 else build_cli(fold_args(fit_args, options.folds, fold))
        checkpoint = fitted(cli)
        probabilities, labels = held_out_probabilities(cli, checkpoint)
        parts[fold] = Probabilities.of(probabilities, labels, cli.datamodule.image_ids["val"])
        if cli.trainer.is_global_zero:
            parts[fold].save(path, settings)
            print(f"Fold {fold + 1} of {options.folds}: probabilities of its held-out images in {relative(path)}")
    if dist.is_initialized() and dist.get_rank() != 0:  # under DDP, global rank 0 ranks and writes
        return None
    return Probabilities.joined([parts[fold] for fold in range(options.folds)]), first, output


def checkpoint_parser() -> ArgumentParser:
    """The options that go with --ckpt: the data (the checkpoint's by default), the device and precision."""
    parser = ArgumentParser(exit_on_error=False, allow_abbrev=False, prog="find_label_issues.py --ckpt CKPT")
    add_data_arguments(parser)
    parser.add_argument("--accelerator", type=str, default="auto", help="cpu, gpu or auto (a GPU when there is one).")
    add_tta_argument(parser)
    add_precision_argument(parser)
    return parser


def checkpoint_probabilities(
    options: argparse.Namespace, args: list[str]
) -> tuple[Probabilities, ClassificationDataModule, Path]:
    """The probabilities that the --ckpt checkpoint gives the images of --split, its data and the output folder."""
    checkpoint = load_checkpoint(options.ckpt)
    parser = checkpoint_parser()
    parser.set_defaults(data=checkpoint.data_config)
    config = parser.parse_args(args)
    data = data_from(config, parser, checkpoint)
    trainer = inference_trainer(checkpoint, config)
    data.prepare_data()
    data.setup("test" if options.split == "test" else "validate")
    logits, labels = split_logits(trainer, with_tta(checkpoint, config.tta), data, options.split)
    run_folder = checkpoint.path.parents[1] if checkpoint.path.parent.name == "checkpoints" else checkpoint.path.parent
    output = options.output or run_folder / f"label_issues-{options.split}"
    return Probabilities.of(logits.softmax(dim=-1), labels, data.image_ids[options.split]), data, output


def split_images(data: ClassificationDataModule, split: str) -> dict[int | str, object]:
    """The images of ``split`` (for k-fold: the training and validation parts together) by id."""
    parts = ["train", "val"] if split == "train" else [split]
    if any(getattr(data, f"{part}_set") is None for part in parts):
        data.prepare_data()
        data.setup("fit" if split == "train" else "test" if split == "test" else "validate")
    return {
        image_id: (dataset, index)
        for part in parts
        for dataset in [getattr(data, f"{part}_set")]
        for index, image_id in enumerate(data.image_ids[part])
    }


def write_results(found: Probabilities, data: ClassificationDataModule, output: Path, options: argparse.Namespace):
    """Rank, write the CSV, the contact sheet, the probabilities and the summary; print the summary."""
    issues = rank_label_issues(found)
    output.mkdir(parents=True, exist_ok=True)
    found.save(output / "probabilities.npz")
    class_names = list(data.class_names)
    write_csv(issues, class_names, output / "label_issues.csv")
    images = split_images(data, options.split)

    def image(image_id: int | str) -> object:
        dataset, index = images[image_id]
        return dataset[index][0]

    sheet = write_contact_sheet(issues, class_names, image, output, options.sheet_images)
    record = summary(issues, class_names, data.changed_labels if options.split == "train" else {})
    (output / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    print("\n" + "\n".join(summary_lines(record, output, sheet)))


def find_label_issues() -> int:
    """Probabilities (k-fold, or a checkpoint's), then the ranking and its files; returns the exit code."""
    try:
        options, rest = parse_args(expand_short_flags(sys.argv[1:]))
        check_cleanlab()
        if options.ckpt:
            found, data, output = checkpoint_probabilities(options, rest)
        else:
            folds = fold_probabilities(options, rest)
            if folds is None:
                return 0
            found, first, output = folds
            data = first.datamodule
        write_results(found, data, output, options)
    except CommandError as err:
        return report(err)
    except (*USER_ERRORS, RuntimeError) as err:  # RuntimeError: under DDP, another process ended, and said why
        return stopped_code(err)
    return 0


def main() -> int:
    """The command: ``find_label_issues`` in a prepared process; returns the exit code."""
    return run(find_label_issues)
