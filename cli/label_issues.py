"""Images whose given label is likely wrong, from out-of-sample class probabilities: the probabilities saved and
read again, cleanlab's ranking, and the CSV, contact sheet and summary of scripts/find_label_issues.py."""

import csv
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from cli.errors import CommandError
from cli.run_folders import relative
from datamodules.names import shown_name
from loggers.media import write_figure
from loggers.plots import labelled_images_figure

CLEANLAB_MISSING = 'finding wrong labels needs cleanlab, which is not installed: pip install -e ".[labels]"'


def check_cleanlab() -> None:
    """Fail in one line, before any training, where cleanlab (the ``labels`` extra) is not installed."""
    try:
        import cleanlab.filter  # noqa: F401
    except ImportError:
        raise CommandError(CLEANLAB_MISSING) from None


@dataclass
class Probabilities:
    """Out-of-sample class probabilities of images, with their given labels and how to find each image (its
    file path, or its index in the data set: see ``ClassificationDataModule.image_ids``)."""

    probabilities: np.ndarray  # (N, classes), float
    labels: np.ndarray  # (N,) the given labels
    images: list[int] | list[str]

    def save(self, path: Path, settings: dict[str, Any] | None = None) -> None:
        """Write them to ``path`` (NumPy's .npz: ``probabilities``, ``labels``, ``images``, ``settings`` as JSON),
        whole or not at all: a run killed while writing leaves no truncated file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(partial, "wb") as file:
            np.savez(
                file,
                probabilities=self.probabilities,
                labels=self.labels,
                images=np.asarray(self.images),
                settings=np.asarray(json.dumps(settings or {})),
            )
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> tuple["Probabilities", dict[str, Any]]:
        """The probabilities saved at ``path``, and the settings saved with them."""
        with np.load(path, allow_pickle=False) as saved:
            found = cls(saved["probabilities"], saved["labels"], saved["images"].tolist())
            return found, json.loads(str(saved["settings"]))

    @classmethod
    def joined(cls, parts: list["Probabilities"]) -> "Probabilities":
        """The images of all ``parts`` (the held-out folds), in the order of their ids."""
        images = [image for part in parts for image in part.images]
        order = sorted(range(len(images)), key=images.__getitem__)
        return cls(
            np.concatenate([part.probabilities for part in parts])[order],
            np.concatenate([part.labels for part in parts])[order],
            [images[i] for i in order],
        )

    @classmethod
    def of(cls, probabilities: Tensor, labels: Tensor, images: list[int] | list[str]) -> "Probabilities":
        """From the tensors of a prediction (float64, as cleanlab checks that each row sums to 1)."""
        return cls(probabilities.double().numpy(), labels.long().numpy(), list(images))


@dataclass
class LabelIssues:
    """The images flagged as likely mislabelled, best candidates first: their positions in the ranked
    ``Probabilities``, the label the model believes instead, and the label-quality scores of all images."""

    found: Probabilities
    ranked: np.ndarray  # positions of the flagged images, lowest label quality first
    suggested: np.ndarray  # (N,) the most probable class other than the given one
    quality: np.ndarray  # (N,) cleanlab's self-confidence: the probability of the given label

    def row(self, position: int, class_names: list[str]) -> dict[str, Any]:
        """One line of the CSV: the image, its given and suggested labels, the score and both probabilities."""
        given, suggested = int(self.found.labels[position]), int(self.suggested[position])
        image = self.found.images[position]
        return {
            "image": shown_name(image) if isinstance(image, str) else image,
            "given": shown_name(class_names[given]),
            "suggested": shown_name(class_names[suggested]),
            "label_quality": round(float(self.quality[position]), 6),
            "p_given": round(float(self.found.probabilities[position, given]), 6),
            "p_suggested": round(float(self.found.probabilities[position, suggested]), 6),
        }


def rank_label_issues(found: Probabilities) -> LabelIssues:
    """Confident learning (cleanlab's ``find_label_issues``) flags the images; they are ranked by the probability of
    their given label (self-confidence), the least likely first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels, probabilities = found.labels, found.probabilities
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, probabilities, method="self_confidence")
    others = probabilities.copy()
    others[np.arange(len(labels)), labels] = -1  # the label believed instead: never the given one
    return LabelIssues(found, np.asarray(ranked, dtype=np.int64), others.argmax(axis=1), quality)


def write_csv(issues: LabelIssues, class_names: list[str], path: Path) -> None:
    """One row per flagged image, best candidates first."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(
            file, fieldnames=["image", "given", "suggested", "label_quality", "p_given", "p_suggested"]
        )
        writer.writeheader()
        writer.writerows(issues.row(int(position), class_names) for position in issues.ranked)


def write_contact_sheet(
    issues: LabelIssues, class_names: list[str], image: Callable[[int | str], Tensor], output: Path, count: int
) -> Path | None:
    """The first ``count`` flagged images, each titled ``given -> suggested (p)``, as ``output/label_issues.png`` and
    in TensorBoard's IMAGES tab (an events file in ``output``); ``image`` gives an image (uint8, C x H x W) by id."""
    top = [int(position) for position in issues.ranked[:count]]
    if not top:
        (output / "label_issues.png").unlink(missing_ok=True)  # an earlier ranking's
        return None
    titles = []
    for position in top:
        row = issues.row(position, class_names)
        titles.append(f"{row['given']} -> {row['suggested']} ({row['p_suggested']:.2f})")
    images = [image(issues.found.images[position]) for position in top]
    import torch  # here: the rest of this module needs no torch

    for earlier in output.glob("events.out.tfevents.*"):  # a ranking run again: TensorBoard shows the last one
        earlier.unlink()
    return write_figure(output, "label_issues", labelled_images_figure(torch.stack(images), titles))


def summary(issues: LabelIssues, class_names: list[str], changed_labels: dict[int, int]) -> dict[str, Any]:
    """How many images were flagged, of how many, and by given class; with ``changed_labels`` (the images whose
    label ``--data.label_noise`` changed, by id), the precision and recall of the flagged ones against them."""
    flagged = [issues.found.images[position] for position in issues.ranked]
    by_class = Counter(int(issues.found.labels[position]) for position in issues.ranked)
    record: dict[str, Any] = {
        "images": len(issues.found.labels),
        "flagged": len(flagged),
        "flagged_by_given_class": {shown_name(name): by_class[c] for c, name in enumerate(class_names)},
    }
    if changed_labels:
        changed = set(changed_labels) & set(issues.found.images)  # those ranked: the training data's
        hits = len(changed & set(flagged))
        record["label_noise"] = {
            "changed": len(changed),
            "changed_and_flagged": hits,
            "precision": hits / len(flagged) if flagged else 0.0,
            "recall": hits / len(changed) if changed else 0.0,
        }
    return record


def summary_lines(record: dict[str, Any], output: Path, sheet: Path | None) -> list[str]:
    """The summary to print: the flagged images, per given class, the label noise found, and where the files are
    (``sheet``: the contact sheet, None where nothing was flagged)."""
    images, flagged = record["images"], record["flagged"]
    per_class = ", ".join(f"{name}: {count}" for name, count in record["flagged_by_given_class"].items() if count)
    share = f"{flagged / images:.1%}"
    lines = [f"Flagged {flagged:,} of {images:,} images ({share}); by given class: {per_class or 'none'}"]
    if noise := record.get("label_noise"):
        lines.append(
            f"Label noise: {noise['changed_and_flagged']:,} of the {noise['changed']:,} changed labels flagged: "
            f"precision {noise['precision']:.1%}, recall {noise['recall']:.1%}"
        )
    files = f"{relative(output / 'label_issues.csv')} (best first)"
    if sheet is not None:
        files += f", contact sheet {relative(sheet)}, TensorBoard: tensorboard --logdir {relative(output)}"
    lines.append(f"Wrong-label candidates: {files}")
    return lines
