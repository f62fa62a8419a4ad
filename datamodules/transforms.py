"""Image preprocessing: per image to a uint8 tensor, then per batch on the device to normalized floats."""

import copy
import functools
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.datasets import VisionDataset
from torchvision.transforms import v2


def to_uint8_tensor(resize_to: tuple[int, int] | None = None) -> v2.Compose:
    """A PIL image (or array) to a uint8 tensor (channels, height, width), resized to (height, width) if given."""
    steps: list[v2.Transform] = [v2.ToImage()]
    if resize_to is not None:
        steps.append(v2.Resize(list(resize_to), antialias=True))
    return v2.Compose([*steps, v2.ToPureTensor()])


def with_transform(dataset: VisionDataset, transform: v2.Transform) -> VisionDataset:
    """A shallow copy of a torchvision ``dataset`` that shares its data or file list but applies ``transform``."""
    view = copy.copy(dataset)
    view.transform = transform
    return view


@functools.cache
def _pixel_statistics(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """``mean`` and ``std`` on a 0-255 scale, shaped (1, C, 1, 1), on ``device``: made once, not copied per batch."""
    return (
        torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255,
        torch.tensor(std, device=device).view(1, -1, 1, 1) * 255,
    )


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 images (N, C, H, W) to float32, less ``mean`` and divided by ``std`` (both on a 0-1 scale)."""
    shift, scale = _pixel_statistics(tuple(mean), tuple(std), images.device)
    return images.to(torch.float32, copy=True).sub_(shift).div_(scale)  # in place on a copy: one new tensor, not three
