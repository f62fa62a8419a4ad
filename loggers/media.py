"""Figures and text for each logger that has a place for them: TensorBoard, MLflow and Weights & Biases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MEDIA_LOGGERS = (TensorBoardLogger, MLFlowLogger, WandbLogger)


def media_loggers(trainer: Trainer) -> list[Logger]:
    """The run's loggers that can show figures (CSV's cannot)."""
    return [logger for logger in trainer.loggers if isinstance(logger, MEDIA_LOGGERS)]


def figure_pixels(figure: Figure) -> np.ndarray:
    """The figure rendered as an RGB array of shape (height, width, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only for W&B's images

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def artifact_name(tag: str, step: int, suffix: str) -> str:
    """``val/confusion_matrix`` at step 80 -> ``figures/val_confusion_matrix_step000080.png``."""
    return f"figures/{tag.replace('/', '_')}_step{step:06d}{suffix}"


def log_figure(trainer: Trainer, tag: str, figure: Figure) -> None:
    """Show ``figure`` under ``tag`` at the current step: TensorBoard's IMAGES tab, an MLflow artifact, a W&B image."""
    step = trainer.global_step
    for logger in media_loggers(trainer):
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(tag, figure, step, close=False)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_figure(logger.run_id, figure, artifact_name(tag, step, ".png"))
        else:
            logger.log_image(key=tag, images=[figure_pixels(figure)], step=step)


def log_text(trainer: Trainer, tag: str, markdown: str) -> None:
    """Show ``markdown`` under ``tag``: TensorBoard's TEXT tab, an MLflow artifact (W&B: the figures say it)."""
    step = trainer.global_step
    for logger in media_loggers(trainer):
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(tag, markdown, step)
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_text(logger.run_id, markdown, artifact_name(tag, step, ".md"))


def write_figure(folder: Path, tag: str, figure: Figure) -> Path:
    """Write ``figure`` as ``folder/<tag>.png`` and under ``tag`` in TensorBoard's IMAGES tab, in an events file of
    ``folder`` (a TensorBoard run of its own, for a command that is no training run); returns the PNG's path."""
    from torch.utils.tensorboard import SummaryWriter  # here: only the commands outside training need it

    png = folder / f"{tag.replace('/', '_')}.png"
    figure.savefig(png)
    with SummaryWriter(str(folder)) as writer:
        writer.add_figure(tag, figure, close=False)
    return png
