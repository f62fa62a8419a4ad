"""MLflow and W&B runs named after the run folder: their own random names were the same for every seeded run."""

from pathlib import Path

from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger


def name_runs(loggers: list[Logger], folder: Path, resumed: bool) -> None:
    """Name the MLflow and W&B runs of ``loggers`` after the run ``folder`` (``digits-cnn-3``, or
    ``digits-cnn-3 (resumed)``) and give them its path (MLflow: tag ``run_folder``; W&B: the run's notes), where
    the logger has not started its run yet and was given no name.

    Called before training: Lightning starts every logger's run before any callback's ``setup``.
    """
    name = f"{folder.name} (resumed)" if resumed else folder.name
    for logger in loggers:
        if isinstance(logger, MLFlowLogger) and not logger._initialized and logger._run_name is None:
            logger._run_name = name  # Lightning's MLFlowLogger has no public way to name the run it starts later
            logger.tags = {**(logger.tags or {}), "run_folder": str(folder.resolve())}
        elif isinstance(logger, WandbLogger) and logger._experiment is None and not logger._wandb_init.get("name"):
            logger._wandb_init.update(name=name, notes=f"run folder: {folder.resolve()}")
