"""The metric that picks the best checkpoint (``--checkpoint.monitor``) and drives early stopping: its direction,
the checkpoint's file name, and a refusal, before training, of a metric that the run does not log."""

from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from cli.flags import given

DEFAULT_FILENAME = "best-epoch={epoch}-val_acc={val/acc:.4f}"
LOWER_IS_BETTER = ("loss", "ece", "nll")  # the metrics whose lowest value is the best; the rest, the highest


def metric_mode(metric: str) -> str:
    """``min`` for losses and calibration errors, ``max`` for accuracies, F1 and AUROC."""
    return "min" if metric.rpartition("/")[2].endswith(LOWER_IS_BETTER) else "max"


def settle_monitors(config: Namespace, command_line: list[str]) -> None:
    """Set the mode of the checkpoint and of each EarlyStopping by their metric's direction, and name the best
    checkpoint after the monitored metric; refuse a mode given on the command line against that direction."""
    checkpoint = config.checkpoint
    if checkpoint.monitor:
        settle_mode(checkpoint, checkpoint.monitor, "--checkpoint", given(command_line, "--checkpoint.mode"))
        if checkpoint.filename == DEFAULT_FILENAME:
            name = checkpoint.monitor.replace("/", "_")
            checkpoint.filename = f"best-epoch={{epoch}}-{name}={{{checkpoint.monitor}:.4f}}"
    for callback in config.trainer.callbacks or []:
        options = getattr(callback, "init_args", None)
        if str(callback.class_path).rpartition(".")[2] == "EarlyStopping" and options and options.get("monitor"):
            told = given(command_line, "--trainer.callbacks.mode")
            settle_mode(options, options.monitor, "--trainer.callbacks", told)


def settle_mode(options: Any, metric: str, flag: str, told: bool) -> None:
    """Set ``options.mode`` by the direction of ``metric``, or refuse one ``told`` on the command line against it."""
    mode = metric_mode(metric)
    if told and options.mode != mode:
        best = "highest" if options.mode == "max" else "lowest"
        raise ValueError(f"{flag}.mode {options.mode} would keep the {best} {metric}: use {mode}, or leave it out")
    options.mode = mode


def check_monitors(callbacks: list[Callback], model: LightningModule) -> None:
    """Refuse, in one line, a checkpoint or EarlyStopping that monitors a metric the model does not log."""
    logged = getattr(model, "monitorable_metrics", None)
    if logged is None:  # not an ImageClassifier: its metrics are its own
        return
    names = logged()
    for callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if not isinstance(callback, (ModelCheckpoint, EarlyStopping)) or monitor is None:
            continue
        if monitor not in names and not monitor.startswith("val_class_acc/"):
            flag = "--checkpoint" if isinstance(callback, ModelCheckpoint) else "--trainer.callbacks"
            raise ValueError(
                f"{flag}.monitor {monitor}: the run logs no such metric; choose one of {', '.join(names)} "
                "(or val_class_acc/<class>)"
            )
