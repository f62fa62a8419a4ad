"""The reliability diagram of each validation and test, in the loggers that show figures and as a PNG in the run
folder."""

from pathlib import Path

from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics.utilities import dim_zero_cat

from loggers.media import log_figure


class ReliabilityDiagram(Callback):
    """After each validation epoch and each test, draw how far the model's confidence is from its accuracy: the
    predictions in 15 confidence bins, each bin's accuracy against the diagonal, the bins' counts and the expected
    calibration error (ECE) in the title. ``<stage>/reliability`` in TensorBoard's IMAGES tab (MLflow artifacts, W&B
    images), and ``reliability_<stage>.png`` in the run folder (validation's from the last epoch).

    Reads the model's ``val_ece`` and ``test_ece`` metrics (``ImageClassifier``'s), so that the diagram shows the
    probabilities that ``val/ece`` and ``test/ece`` measure: after test-time augmentation and the temperature.
    """

    def _draw(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        metric = getattr(pl_module, f"{stage}_ece", None)
        if metric is None or trainer.sanity_checking or not metric.confidences:
            return
        from loggers.plots import reliability_figure  # matplotlib, only once there is a figure

        ece = float(metric.compute())  # over all DDP ranks; kept for the model's log of the metric
        with metric.sync_context():
            confidences, correct = dim_zero_cat(metric.confidences), dim_zero_cat(metric.accuracies)
        where = "validation" if stage == "val" else "test"
        title = f"Reliability, {where} at step {trainer.global_step}: ECE {ece:.2%}"
        figure = reliability_figure(confidences, correct, metric.n_bins, title)
        log_figure(trainer, f"{stage}/reliability", figure)
        folder = trainer.log_dir  # every rank must ask: under DDP it is broadcast from rank 0
        if trainer.is_global_zero and folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            figure.savefig(Path(folder) / f"reliability_{stage}.png", dpi=100)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module, "test")
