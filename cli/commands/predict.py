"""Classify image files with a checkpoint: the top-k classes and their probabilities, on screen, as CSV or JSON.

Images of any size or colour mode are converted as the checkpoint's training data was (grey or RGB,
resized to its size, normalized with its statistics). Files that cannot be read are reported and skipped.

Examples:
    python scripts/predict.py --ckpt_path lightning_logs/mnist-mlp-1/checkpoints/last.ckpt digit.png photo.jpg
    python scripts/predict.py --ckpt_path CKPT my_images/ --top_k 3 --csv predictions.csv --json predictions.json
"""

import csv
import json
import sys
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from cli.exits import run_command
from cli.trained import (
    CKPT_HELP,
    add_precision_argument,
    add_tta_argument,
    inference_trainer,
    load_checkpoint,
    with_tta,
)
from datamodules import ImageFiles
from datamodules.names import shown_name


def build_parser() -> ArgumentParser:
    """The command's options."""
    parser = ArgumentParser(description=__doc__, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--ckpt_path", type=str, required=True, help=CKPT_HELP)
    parser.add_argument("paths", nargs="+", type=str, help="Image files, or folders searched (at any depth) for them.")
    parser.add_argument("--top_k", type=int, default=1, help="How many of the most probable classes to give per image.")
    parser.add_argument("--csv", type=str | None, default=None, help="Also write the predictions to this CSV file.")
    parser.add_argument("--json", type=str | None, default=None, help="Also write the predictions to this JSON file.")
    parser.add_argument("--quiet", type=bool, default=False, help="Do not print the table (only the files asked for).")
    parser.add_argument("--batch_size", type=int, default=128, help="Images per forward pass.")
    parser.add_argument("--accelerator", type=str, default="auto", help="cpu, gpu or auto (a GPU when there is one).")
    add_tta_argument(parser)
    add_precision_argument(parser)
    return parser


def write_csv(path: str, rows: list[dict]) -> None:
    """One line per image: the file, then each rank's class and probability."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        top_k = len(rows[0]["predictions"])
        writer.writerow(
            ["file"] + [f"{key}_{rank}" for rank in range(1, top_k + 1) for key in ("class", "probability")]
        )
        for row in rows:
            writer.writerow([row["file"]] + [v for p in row["predictions"] for v in (p["class"], p["probability"])])


def predict_images(args: list[str]) -> None:
    """Predict, print the table, write the files asked for."""
    config = build_parser().parse_args(args)
    checkpoint = load_checkpoint(config.ckpt_path)
    class_names = checkpoint.preprocessing["class_names"]
    if not 1 <= config.top_k <= len(class_names):
        raise ValueError(f"--top_k must be between 1 and the number of classes, {len(class_names)}; got {config.top_k}")
    data = ImageFiles(config.paths, batch_size=config.batch_size, **checkpoint.preprocessing)
    data.setup("predict")
    for path, reason in data.skipped:
        print(f"skipped {shown_name(path)}: {reason}", file=sys.stderr)
    trainer = inference_trainer(checkpoint, config)
    model = with_tta(checkpoint, config.tta)
    probabilities, classes = torch.cat(trainer.predict(model, datamodule=data)).topk(config.top_k)
    rows = [
        {
            "file": shown_name(path),
            "predictions": [
                {"class": shown_name(class_names[c]), "probability": round(p, 6)}
                for c, p in zip(top_classes.tolist(), top_probs.tolist(), strict=True)
            ],
        }
        for path, top_classes, top_probs in zip(data.files, classes, probabilities, strict=True)
    ]
    if not config.quiet:
        width = max(len(row["file"]) for row in rows)
        for row in rows:
            ranked = "   ".join(f"{p['class']} {p['probability']:.1%}" for p in row["predictions"])
            print(f"{row['file']:<{width}}  {ranked}")
    if config.csv:
        write_csv(config.csv, rows)
    if config.json:
        Path(config.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} image(s) classified, {len(data.skipped)} skipped", file=sys.stderr)


def main() -> int:
    """The command: ``predict_images`` on the command line's arguments; returns the exit code."""
    return run_command(predict_images)
