"""Test-time augmentation: the logits of an image averaged with those of its mirror image and small shifts."""

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

TTAName = Literal["none", "flip", "flip_translate"]


def mirror_mean(logits_of: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The mean of the logits of ``x`` and of its left-right mirror, both views in one batch (one pass)."""
    return logits_of(torch.cat([x, x.flip(-1)])).unflatten(0, (2, -1)).mean(0)


def tta_logits(logits_of: Callable[[Tensor], Tensor], x: Tensor, mode: str) -> Tensor:
    """The logits of the batch ``x`` under test-time augmentation ``mode``.

    none: ``logits_of(x)``; flip: the mean over the image and its mirror; flip_translate
    (airbench's 6 views): half that, plus half the mean of the same mirror average over the images
    shifted by one pixel up-left and down-right (reflect padding).
    """
    if mode == "none":
        return logits_of(x)
    mirrored = mirror_mean(logits_of, x)
    if mode == "flip":
        return mirrored
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :height, :width], padded[..., 2:, 2:]]
    return 0.5 * mirrored + 0.5 * torch.stack([mirror_mean(logits_of, view) for view in shifted]).mean(0)
