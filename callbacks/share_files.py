"""The run folder's files, also with the loggers that keep files: MLflow's artifacts, a W&B run's files."""

import shutil
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

from callbacks.resume import RunInterrupted
from loggers import RunMLFlowLogger

SHARED_FILES = (
    "config.yaml",
    "hparams.yaml",
    "metrics.csv",
    "provenance.json",
    "test_metrics.json",
    "classification_report.txt",
)


class ShareRunFiles(Callback):
    """After training and after testing, and when either stops on an error or an interrupt, copy the run folder's
    files (configuration, per-epoch metrics, provenance, test metrics and report) to each MLflow logger (artifacts
    under ``run/``) and W&B logger (the run's files). An MLflow run that the user interrupted is marked KILLED.

    The run folder stays the one the first logger (TensorBoard's) makes; these loggers get copies.
    """

    def __init__(self) -> None:
        self.folder: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Asked here, on every rank: log_dir is a collective call, which teardown may come too late for under DDP.
        self.folder = Path(trainer.log_dir or trainer.default_root_dir)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Lightning calls no teardown hook after an exception, and then marks the MLflow run FAILED.
        for logger in trainer.loggers:
            if isinstance(logger, RunMLFlowLogger):
                logger.interrupted = isinstance(exception, (KeyboardInterrupt, RunInterrupted))
        self.teardown(trainer, pl_module, "exception")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = self.folder
        if folder is None or not trainer.is_global_zero:
            return
        files = [folder / name for name in SHARED_FILES if (folder / name).is_file()]
        for logger in trainer.loggers:
            for path in files:
                if isinstance(logger, MLFlowLogger):
                    logger.experiment.log_artifact(logger.run_id, str(path), "run")
                elif isinstance(logger, WandbLogger):
                    # Into the W&B run's folder, which it uploads when the run ends (wandb.save said "Symlinked 1
                    # file" for each), under the run folder's name: W&B keeps a config.yaml of its own there.
                    target = Path(logger.experiment.dir) / folder.name
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target / path.name)
