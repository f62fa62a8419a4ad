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
    """

    def __init__(self, gamma: float = 2.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be 0 or more, got {gamma}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        cross_entropy = F.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)
        p_true = torch.exp(-F.cross_entropy(logits.detach(), target, reduction="none"))
        return ((1 - p_true) ** self.gamma * cross_entropy).mean()
