"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one scalar T > 0 that divides a
classifier's logits so that its probabilities mean what they say; and the calibration figures of a set of logits."""

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from models.classifier import ECE_BINS, ImageClassifier


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimizes the mean negative log-likelihood of ``softmax(logits / T)``.

    LBFGS as in Guo et al.'s reference code (gpleiss/temperature_scaling), over log T so that T stays
    positive, in float64 and with a strong-Wolfe line search: the reference's fixed step (lr 0.01,
    50 iterations from T = 1.5) stops short of the minimum when T is far from 1.5. Deterministic: the
    same logits give the same T on every process.
    """
    logits, labels = logits.detach().cpu().double(), labels.detach().cpu()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], lr=1, max_iter=max_iter, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def calibration_figures(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """The accuracy, the negative log-likelihood (no label smoothing) and the expected calibration error (15 bins,
    l1: torchmetrics', as the models log ``val/ece`` and ``test/ece``) of ``softmax(logits)``."""
    logits, labels = logits.detach().float().cpu(), labels.detach().cpu()
    return {
        "acc": float((logits.argmax(-1) == labels).float().mean()),
        "nll": float(F.cross_entropy(logits, labels)),
        "ece": float(
            multiclass_calibration_error(logits.softmax(-1), labels, logits.shape[-1], n_bins=ECE_BINS, norm="l1")
        ),
    }


class TemperatureScaled(LightningModule):
    """``network(x) / temperature``: a network's logits with a checkpoint's temperature, whose softmax is calibrated
    (what export.py writes and quantize.py measures). A LightningModule for its ``to_torchscript`` and ``to_onnx``,
    which trace a LightningModule inside without asking for its Trainer."""

    def __init__(self, network: nn.Module, temperature: Tensor) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("temperature", temperature.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x) / self.temperature


def calibrated(model: ImageClassifier) -> TemperatureScaled:
    """``model``'s network (one plain pass, in eval mode) with its logits divided by the model's temperature."""
    return TemperatureScaled(model.eval(), model.temperature).eval()
