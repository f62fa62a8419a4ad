"""Keep the final test metrics with the run, as a JSON file."""

import json
import time
from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer


class SaveTestMetrics(Callback):
    """After testing, write ``test_metrics.json`` into the run folder (TensorBoard's HPARAMS tab compares
    runs by the same metrics: see :class:`callbacks.RunHyperparameters`), with the tested checkpoint,
    ``time_s``, the seconds the test loop took (as ``metrics.csv`` has them for each epoch), and the model's
    ``temperature``.

    Args:
        filename: Name of the JSON file written into the run folder (the logger's version folder).
    """

    def __init__(self, filename: str = "test_metrics.json") -> None:
        self.filename = filename
        self.path: Path | None = None
        self.started = 0.0

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.monotonic()

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
        if trainer.log_dir is None:
            return
        self.path = Path(trainer.log_dir) / self.filename
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            seconds = round(time.monotonic() - self.started, 3)
            record = {**metrics, "checkpoint": trainer.ckpt_path, "time_s": seconds}
            if hasattr(pl_module, "temperature"):  # that divided the logits (1: not calibrated)
                record["temperature"] = float(pl_module.temperature)
            undefined = {k: v for k, v in getattr(pl_module, "undefined_metrics", {}).items() if k.startswith("test/")}
            if undefined:  # left out of the metrics, and said why
                record["undefined"] = undefined
            self.path.write_text(json.dumps(record, indent=2) + "\n")
