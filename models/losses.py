"""Losses of this project beyond PyTorch's own (any ``nn.Module`` loss works with ``--model.loss``)."""

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    The worked example of a custom loss: it down-weights the samples the model already gets right,
    so training dwells on the hard ones. ``gamma = 0`` is the plain cross-entropy.

    Args:
        gamma: Focusing exponent; 2 in the paper.
        label_smoothing: Label smoothing of the cross-entropy term, in [0, 1).
        weight: One weight per class for the cross-entropy term, as ``nn.CrossEntropyLoss``'s (the mean then
            divides by the weights of the targets, as it does); ``--model.class_weights`` sets it.
    """

    def __init__(self, gamma: float = 2.0, label_smoothing: float = 0.0, weight: list[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be 0 or more, got {gamma}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        cross_entropy = F.cross_entropy(
            logits, target, weight=self.weight, reduction="none", label_smoothing=self.label_smoothing
        )
        p_true = torch.exp(-F.cross_entropy(logits.detach(), target, reduction="none"))
        focal = (1 - p_true) ** self.gamma * cross_entropy
        if self.weight is None or target.is_floating_point():  # soft targets: a plain mean, as F.cross_entropy's
            return focal.mean()
        return focal.sum() / self.weight[target].sum()
