"""``metrics.csv``: one row per epoch in the run folder, readable without TensorBoard."""

import csv
import time
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer

FIRST_COLUMNS = ["epoch", "step", "time_s", "lr"]


def epoch_metrics(trainer: Trainer) -> dict[str, float]:
    """The epoch-level training and validation metrics in ``trainer.callback_metrics``, by name."""
    return {
        name: float(value)
        for name, value in sorted(trainer.callback_metrics.items())
        if name.startswith(("train/", "val/")) and not name.endswith("_step") and not name.startswith("train/lr")
    }


class EpochMetricsCSV(Callback):
    """Append a row to ``metrics.csv`` in the run folder after each epoch, on the global-rank-0 process.

    Columns: ``epoch``, ``step`` (optimizer steps so far), ``time_s`` (seconds the epoch took, validation
    included), ``lr`` (the first optimizer's learning rate at the end of the epoch), then the epoch's
    training and validation metrics (``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ...). A
    resumed run appends to the file and skips the epochs it holds already.

    Args:
        filename: Name of the file in the run folder (the logger's version folder).
    """

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self.pending: dict[str, float] | None = None  # the finished epoch whose metrics are not all logged yet
        self.started = time.monotonic()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self.path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename  # collective: every rank

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer)
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Called before the model logs its training metrics of the epoch: the row is written once they are.
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        elapsed = round(time.monotonic() - self.started, 3)
        self.pending = {"epoch": trainer.current_epoch, "step": trainer.global_step, "time_s": elapsed, "lr": lr}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer)

    def _write(self, trainer: Trainer) -> None:
        row, self.pending = self.pending, None
        if row is None or self.path is None or not trainer.is_global_zero:
            return
        row.update(epoch_metrics(trainer))
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as file:
                records = list(csv.DictReader(file))
            if any(int(record["epoch"]) >= row["epoch"] for record in records):
                return  # written before the run was resumed
            with open(self.path, newline="") as file:
                columns = next(csv.reader(file))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            columns = FIRST_COLUMNS + [name for name in row if name not in FIRST_COLUMNS]
            self.path.write_text(",".join(columns) + "\n")
        with open(self.path, "a", newline="") as file:
            csv.DictWriter(file, columns, extrasaction="ignore").writerow(row)
