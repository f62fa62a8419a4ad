"""One fit of a built command line, and the checkpoint it is tested on: what fit, seeds, folds and search share."""

from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import MLFlowLogger, WandbLogger

from cli.calibration import Calibration, calibrate_checkpoint
from cli.parser import FitCLI
from cli.reports import describe_run
from cli.resume import check_checkpoint, check_unfinished
from loggers.lightning_messages import CHECKPOINT_LOADED, lightning_messages_dropped
from loggers.run_names import name_runs
from models.classifier import DEFAULT_STATE


def fit(cli: FitCLI) -> str:
    """Fit the CLI's model on its datamodule; returns the best checkpoint's path ("" when none was kept)."""
    if cli.config.ckpt_path:
        checkpoint = check_checkpoint(cli.config.ckpt_path, cli.model)  # another model's weights: said first
        check_unfinished(checkpoint, Path(cli.config.ckpt_path), cli.trainer.max_epochs, cli.trainer.max_steps)
    if cli.config.init_weights:
        weights = check_checkpoint(cli.config.init_weights, cli.model)["state_dict"]
        cli.model.load_state_dict({**weights, **DEFAULT_STATE})  # a new run from its weights starts uncalibrated
    if cli.config.compile:
        cli.model.compile()  # the forward pass only: loss, metrics and logging stay eager
    if cli.trainer.is_global_zero:
        print(describe_run(cli.trainer, cli.config.seed_everything, cli.config.ckpt_path), flush=True)
    loggers = cli.trainer.loggers
    if rank_zero_only.rank == 0 and any(isinstance(logger, (MLFlowLogger, WandbLogger)) for logger in loggers):
        # The run folder, picked now rather than when training starts: their runs are named after it.
        name_runs(loggers, Path(cli.trainer.log_dir), resumed=bool(cli.config.ckpt_path))
    with lightning_messages_dropped(*CHECKPOINT_LOADED):  # the line above names the checkpoint resumed
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    return cli.trainer.checkpoint_callback.best_model_path if cli.trainer.checkpoint_callback else ""


def tested_checkpoint(trainer: Trainer, best: str) -> str | None:
    """The checkpoint a run is tested on: the best one, else (no validation chose one) ``last.ckpt``, if any."""
    callback = trainer.checkpoint_callback
    return best or (callback.last_model_path if callback is not None else "") or None


def calibrated(cli: FitCLI, tested: str | None) -> tuple[str | None, Calibration | None]:
    """With ``--calibrate``: the calibrated copy of the ``tested`` checkpoint to test instead, and its calibration."""
    if not cli.config.calibrate or tested is None:
        return tested, None
    calibration = calibrate_checkpoint(cli.trainer, cli.model, cli.datamodule, Path(tested))
    return str(calibration.path), calibration
