"""Per-image preprocessing: to a normalized float tensor, with optional resizing and augmentation."""

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def image_transform(
    mean: Sequence[float], std: Sequence[float], size: tuple[int, int] | None = None, augment: bool = False
) -> v2.Compose:
    """A PIL image or uint8 tensor to a normalized float tensor of shape (channels, height, width).

    ``size`` resizes to (height, width). ``augment`` adds the standard CIFAR augmentation: a random
    crop of ``size`` after zero padding by an eighth of the height, and a random horizontal flip.
    """
    steps: list[v2.Transform] = [v2.ToImage()]
    if size is not None:
        steps.append(v2.Resize(list(size), antialias=True))
    if augment:
        if size is None:
            raise ValueError("augmentation needs the image size")
        steps += [v2.RandomCrop(list(size), padding=max(1, size[0] // 8)), v2.RandomHorizontalFlip()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)
