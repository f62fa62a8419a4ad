"""Per-image preprocessing: to a normalized float tensor, with optional resizing and augmentation."""

import copy
from collections.abc import Sequence

import torch
from torchvision.datasets import VisionDataset
from torchvision.transforms import v2


def image_transform(
    mean: Sequence[float],
    std: Sequence[float],
    resize_to: tuple[int, int] | None = None,
    crop_to: tuple[int, int] | None = None,
) -> v2.Compose:
    """A PIL image or uint8 tensor to a normalized float tensor of shape (channels, height, width).

    ``resize_to`` resizes to (height, width). ``crop_to`` adds the standard CIFAR augmentation: a
    random (height, width) crop after zero padding by an eighth of the height, and a random
    horizontal flip.
    """
    steps: list[v2.Transform] = [v2.ToImage()]
    if resize_to is not None:
        steps.append(v2.Resize(list(resize_to), antialias=True))
    if crop_to is not None:
        steps += [v2.RandomCrop(list(crop_to), padding=max(1, crop_to[0] // 8)), v2.RandomHorizontalFlip()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def with_transform(dataset: VisionDataset, transform: v2.Transform) -> VisionDataset:
    """A shallow copy of a torchvision ``dataset`` that shares its data or file list but applies ``transform``."""
    view = copy.copy(dataset)
    view.transform = transform
    return view
