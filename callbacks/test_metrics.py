"""Keep the final test metrics with the run, as a JSON file, and the per-class report as text."""

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics.classification import MulticlassConfusionMatrix

from callbacks.class_report import classification_report, most_confused
from datamodules.names import shown_name


class SaveTestMetrics(Callback):
    """After testing, write ``test_metrics.json`` into the run folder (TensorBoard's HPARAMS tab compares
    runs by the same metrics: see :class:`callbacks.RunHyperparameters`), with the tested checkpoint,
    ``time_s``, the seconds the test loop took (as ``metrics.csv`` has them for each epoch), the model's
    ``temperature``, scikit-learn's ``classification_report`` of the test and its 5 ``most_confused`` pairs
    of classes (``true -> predicted: count``); the report also as text in ``classification_report.txt``.

    The report comes from the test's confusion matrix, summed over every DDP process: exact, as the metrics.
    It needs the model's test step to return ``{"preds"}`` (``ImageClassifier``'s does).

    Args:
        filename: Name of the JSON file written into the run folder (the logger's version folder).
        report_filename: Name of the text file of the report, beside it.
    """

    def __init__(self, filename: str = "test_metrics.json", report_filename: str = "classification_report.txt") -> None:
        self.filename = filename
        self.report_filename = report_filename
        self.path: Path | None = None
        self.started = 0.0
        self.confusion: MulticlassConfusionMatrix | None = None
        self.report: tuple[str, dict] | None = None  # the last test's, as text and as a dict
        self.most_confused: list[str] = []

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started = time.monotonic()
        confusion = MulticlassConfusionMatrix(pl_module.hparams["num_classes"], validate_args=False)
        self.confusion = confusion.to(pl_module.device)
        self.report, self.most_confused = None, []

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx=0
    ) -> None:
        if isinstance(outputs, dict) and "preds" in outputs:
            self.confusion.update(outputs["preds"], batch[1])

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.confusion is None or not self.confusion.update_called:
            return
        matrix = self.confusion.compute()  # on every process: the sum over all of them
        names = getattr(trainer.datamodule, "class_names", None) or [str(i) for i in range(len(matrix))]
        names = [shown_name(str(name)) for name in names]
        self.report = classification_report(matrix, names)
        self.most_confused = most_confused(matrix, names)

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
            if self.report is not None:
                record["most_confused"] = self.most_confused
                record["classification_report"] = self.report[1]
                (self.path.parent / self.report_filename).write_text(self.report[0])
            self.path.write_text(json.dumps(record, indent=2) + "\n")

    @property
    def report_path(self) -> Path | None:
        """Where the last test's report was written (None before a test)."""
        return None if self.path is None or self.report is None else self.path.parent / self.report_filename
