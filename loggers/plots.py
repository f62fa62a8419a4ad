"""Matplotlib figures of a classifier's results: a confusion matrix, images labelled with their classes, and a
reliability diagram.

Drawn here rather than with torchmetrics' ``plot``, which has no title, colour bar or normalized
variant, and whose cells and labels overlap for 4-digit counts and long class names.
"""

import math

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

MOST_ANNOTATED_CLASSES = 20  # more classes: the colours alone, no number in each cell


def confusion_figure(matrix: Tensor, names: list[str], title: str, normalized: bool = False) -> Figure:
    """The confusion matrix (rows: true class, columns: predicted); ``normalized`` divides each row by its sum."""
    counts = matrix.detach().cpu().double().numpy()
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalized else counts
    classes = len(names)
    side = min(max(4.5, 0.6 * classes + 2.5), 16.0)  # inches: a 4-digit count fits a cell
    figure = Figure(figsize=(side + 1.5, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else None, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class" if normalized else "images")
    axes.set_title(title)
    axes.set_xlabel("Predicted class")
    axes.set_ylabel("True class")
    axes.set_xticks(range(classes), names, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(classes), names)
    if classes <= MOST_ANNOTATED_CLASSES:
        middle = values.max() / 2
        for row in range(classes):
            for column in range(classes):
                value = values[row, column]
                text = f"{value:.2f}" if normalized else f"{int(value)}"
                color = "white" if value > middle else "black"
                axes.text(column, row, text, ha="center", va="center", fontsize=8, color=color)
    return figure


def labelled_images_figure(images: Tensor, titles: list[str], columns: int = 8, title: str = "") -> Figure:
    """``images`` (N, C, H, W) in a grid, each scaled to its own range and drawn with its title above it, under
    ``title``.

    Small images are enlarged without blur (nearest-neighbour), so that 8x8 digits stay sharp.
    """
    rows = max(1, math.ceil(len(images) / columns))
    figure = Figure(figsize=(1.7 * columns, 1.9 * rows), layout="constrained")
    for index, axes in enumerate(figure.subplots(rows, columns, squeeze=False).flat):
        axes.set_axis_off()
        if index >= len(images):
            continue
        image = images[index].detach().cpu().float()
        image = (image - image.min()) / (image.max() - image.min()).clamp(min=1e-8)
        if image.shape[0] == 1:
            axes.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axes.imshow(image[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
        axes.set_title(titles[index], fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def reliability_figure(confidences: Tensor, correct: Tensor, bins: int, title: str) -> Figure:
    """A reliability diagram: the accuracy of the predictions in each of ``bins`` equal-width confidence bins
    against the diagonal of perfect calibration, with each bin's count below.

    ``confidences`` holds each prediction's probability, ``correct`` whether it was right (the states of
    torchmetrics' calibration error); a confidence of exactly 1 counts in the last bin.
    """
    confidences, correct = confidences.detach().cpu().double(), correct.detach().cpu().double()
    index = (confidences * bins).long().clamp(0, bins - 1)
    counts = np.bincount(index.numpy(), minlength=bins)
    hits = np.bincount(index.numpy(), weights=correct.numpy(), minlength=bins)
    mean_confidence = np.bincount(index.numpy(), weights=confidences.numpy(), minlength=bins)
    filled = counts > 0
    accuracy = np.divide(hits, counts, out=np.zeros(bins), where=filled)
    mean_confidence = np.divide(mean_confidence, counts, out=np.zeros(bins), where=filled)
    edges = np.linspace(0, 1, bins + 1)
    figure = Figure(figsize=(5.5, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(edges[:-1], accuracy, width=1 / bins, align="edge", color="tab:blue", edgecolor="black", label="accuracy")
    gaps = np.where(filled, mean_confidence - accuracy, 0)
    top.bar(
        edges[:-1],
        gaps,
        bottom=accuracy,
        width=1 / bins,
        align="edge",
        fill=False,
        hatch="//",
        edgecolor="tab:red",
        label="gap to the bin's mean confidence",
    )
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Accuracy", title=title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(edges[:-1], counts, width=1 / bins, align="edge", color="grey", edgecolor="black")
    bottom.set(xlabel="Confidence (probability of the predicted class)", ylabel="Predictions")
    if filled.any() and counts.max() > 20 * counts[filled].min():  # most predictions confident: a log scale
        bottom.set_yscale("log")
    return figure
