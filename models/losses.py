"""Losses of this project beyond PyTorch's own (any ``nn.Module`` loss works with ``--model.loss``).

Class weights (``--model.class_weights``) weigh each sample by its label's class, label smoothing included: PyTorch's
own ``cross_entropy(weight=...)`` also weighs the label-smoothing part of every sample by the weight of each class it
spreads over. With balanced weights on long-tailed data (CIFAR-10-LT: 0.25 to 25), that part alone pushed every
prediction to the rare classes: the commonest class's recall fell to 0, test accuracy from 60% to 46%.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def sample_weights(target: Tensor, weight: Tensor) -> Tensor:
    """Each sample's weight: its class's, or for soft targets (mixup, cutmix) the classes' weights averaged by the
    target's shares."""
    return target.to(weight.dtype) @ weight if target.is_floating_point() else weight[target]


def weighted_mean(losses: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """The mean of the samples' ``losses``, each weighted by ``sample_weights`` (a plain mean without ``weight``)."""
    if weight is None:
        return losses.mean()
    weights = sample_weights(target, weight)
    return (weights * losses).sum() / weights.sum()


class CrossEntropy(nn.CrossEntropyLoss):
    """The cross-entropy of every model (PyTorch's, with ``label_smoothing``), whose class ``weight`` weighs each
    sample's whole loss by its label's class (see the module's docstring); the mean divides by the samples' weights.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.weight is None:
            return super().forward(logits, target)
        losses = F.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)
        return weighted_mean(losses, target, self.weight)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    The worked example of a custom loss: it down-weights the samples the model already gets right,
    so training dwells on the hard ones. ``gamma = 0`` is the plain cross-entropy.

    Args:
        gamma: Focusing exponent; 2 in the paper.
        label_smoothing: Label smoothing of the cross-entropy term, in [0, 1).
        weight: One weight per class: each sample's loss is weighted by its label's class, the mean divides by
            the samples' weights (see ``CrossEntropy``); ``--model.class_weights`` sets it.
    """

    def __init__(self, gamma: float = 2.0, label_smoothing: float = 0.0, weight: list[float] | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be 0 or more, got {gamma}")
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        cross_entropy = F.cross_entropy(logits, target, reduction="none", label_smoothing=self.label_smoothing)
        p_true = torch.exp(-F.cross_entropy(logits.detach(), target, reduction="none"))
        return weighted_mean((1 - p_true) ** self.gamma * cross_entropy, target, self.weight)
