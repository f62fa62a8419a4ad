"""Training augmentations of whole batches on their device, each image drawn on its own.

torchvision's v2 transforms draw their random parameters once per call, so one call on a batch
tensor would crop, flip or mix every image of the batch the same way. Here each image gets its own
draw: shifts, flips, cutout squares, mixup weights and cutmix boxes are tensors of one value per
image, applied by one gather or one mask over the batch; RandAugment and TrivialAugmentWide, whose
operations differ from image to image, are called image by image.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchvision.transforms import v2

Preset = Literal["none", "crop", "crop_flip", "airbench", "page"]
PaddingMode = Literal["zeros", "reflect"]
FlipMode = Literal["none", "random", "alternating"]
AutoAugmentName = Literal["none", "randaugment", "trivialaugment"]

AUTO_AUGMENTS = {"randaugment": v2.RandAugment, "trivialaugment": v2.TrivialAugmentWide}


def preset_options(preset: str, height: int) -> dict[str, object]:
    """The options of an ``--data.augment`` preset for images ``height`` pixels high.

    crop: random crop after padding by an eighth of the height (4 pixels at 32), no flip (digits);
    crop_flip: the same and a random horizontal flip (the standard CIFAR augmentation);
    airbench: translation by up to a sixteenth of the height (2 at 32) with reflect padding and the
    alternating flip (airbench94); page: crop_flip and a cutout square of a quarter of the height (8x8
    at 32: Page's DAWNBench ResNet-9).
    """
    crop = {"translate": max(1, height // 8)}
    options: dict[str, dict[str, object]] = {
        "none": {},
        "crop": crop,
        "crop_flip": {**crop, "flip": "random"},
        "airbench": {"translate": max(1, height // 16), "padding_mode": "reflect", "flip": "alternating"},
        "page": {**crop, "flip": "random", "cutout": max(1, height // 4)},
    }
    if preset not in options:
        raise ValueError(f"unknown --data.augment {preset!r}: choose one of {', '.join(options)}")
    return options[preset]


def reflect_index(index: Tensor, size: int) -> Tensor:
    """Indices outside ``0..size-1`` mirrored back inside, without repeating the edge (as ``F.pad``'s reflect)."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def random_crop_flip(
    images: Tensor, padding: int, padding_mode: PaddingMode = "zeros", flip: Tensor | None = None
) -> Tensor:
    """Random crop after padding and horizontal flip of a batch (N, C, H, W) of any dtype, each image on its own.

    Each image is shifted by up to ``padding`` pixels in each direction (the same as torchvision's
    ``RandomCrop(padding, padding_mode=...)`` per image; zeros: black for uint8 images, 0 for
    normalized ones), then flipped left-right where ``flip`` (one bool per image) is true, or with
    probability 1/2 when ``flip`` is None: one gather over the batch on its device.
    """
    n, _, height, width = images.shape
    device = images.device
    if padding_mode == "reflect" and padding >= min(height, width):
        raise ValueError(f"reflect padding of {padding} needs images larger than {padding} pixels")
    top = torch.randint(-padding, padding + 1, (n, 1), device=device)
    left = torch.randint(-padding, padding + 1, (n, 1), device=device)
    if flip is None:
        flip = torch.rand(n, device=device) < 0.5
    columns = torch.arange(width, device=device)
    columns = torch.where(flip.view(-1, 1), width - 1 - columns, columns) + left
    rows = torch.arange(height, device=device) + top
    if padding_mode == "reflect":
        rows, columns = reflect_index(rows, height), reflect_index(columns, width)
    else:
        inside = ((rows >= 0) & (rows < height)).unsqueeze(2) & ((columns >= 0) & (columns < width)).unsqueeze(1)
        rows, columns = rows.clamp(0, height - 1), columns.clamp(0, width - 1)
    batch = torch.arange(n, device=device).view(-1, 1, 1)
    # Advanced indexing around the channel slice puts channels last: (N, H, W, C).
    out = images[batch, :, rows.unsqueeze(2), columns.unsqueeze(1)].permute(0, 3, 1, 2)
    return out if padding_mode == "reflect" else out * inside.unsqueeze(1).to(out.dtype)


def box_masks(top: Tensor, left: Tensor, bottom: Tensor, right: Tensor, height: int, width: int) -> Tensor:
    """Bool masks (N, 1, H, W), true inside each image's box of rows ``top..bottom-1``, columns ``left..right-1``."""
    rows = torch.arange(height, device=top.device).view(1, -1, 1)
    columns = torch.arange(width, device=top.device).view(1, 1, -1)
    inside = (rows >= top.view(-1, 1, 1)) & (rows < bottom.view(-1, 1, 1))
    inside = inside & (columns >= left.view(-1, 1, 1)) & (columns < right.view(-1, 1, 1))
    return inside.unsqueeze(1)


def cutout(images: Tensor, size: int, p: float) -> Tensor:
    """Zero a ``size`` x ``size`` square at a random place inside each image, with probability ``p`` per image."""
    n, _, height, width = images.shape
    device = images.device
    top = torch.randint(0, max(1, height - size + 1), (n,), device=device)
    left = torch.randint(0, max(1, width - size + 1), (n,), device=device)
    masks = box_masks(top, left, top + size, left + size, height, width)
    masks &= (torch.rand(n, device=device) < p).view(-1, 1, 1, 1)
    return images.masked_fill(masks, 0)


def auto_augment(images: Tensor, name: str) -> Tensor:
    """RandAugment or TrivialAugmentWide (torchvision's, default settings) applied to each image on its own.

    uint8 images, or floats in [0, 1] as torchvision expects. One call per image: each draws its own
    operations and magnitudes, which one call on the batch would draw once for all images.
    """
    transform = AUTO_AUGMENTS[name]()
    return torch.stack([transform(image) for image in images])


def mix(
    images: Tensor, labels: Tensor, num_classes: int, mixup_alpha: float, cutmix_alpha: float, p: float, switch_p: float
) -> tuple[Tensor, Tensor]:
    """Mixup or cutmix of each image with the one before it in the batch; returns the images and soft targets.

    Each image draws on its own whether it is mixed (probability ``p``), with cutmix or mixup
    (cutmix with probability ``switch_p`` when both alphas are positive), and its weight from
    Beta(alpha, alpha); for cutmix the box covers ``1 - weight`` of the image (clipped at the border,
    the weight then recomputed from the box's area). Targets are the one-hot labels mixed with the
    same weights. torchvision's ``v2.MixUp``/``v2.CutMix`` pair images the same way (``roll(1)``) but
    draw one weight and one box for the whole batch.
    """
    n, _, height, width = images.shape
    device = images.device
    targets = torch.nn.functional.one_hot(labels, num_classes).to(images.dtype)
    use_cutmix = torch.rand(n, device=device) < (switch_p if mixup_alpha > 0 else 1.0)
    if cutmix_alpha <= 0:
        use_cutmix.zero_()
    weight = torch.ones(n, device=device)
    for alpha, chosen in ((mixup_alpha, ~use_cutmix), (cutmix_alpha, use_cutmix)):
        if alpha > 0:
            draw = torch.distributions.Beta(torch.tensor(alpha, device=device), torch.tensor(alpha, device=device))
            weight = torch.where(chosen, draw.sample((n,)), weight)
    weight = torch.where(torch.rand(n, device=device) < p, weight, torch.ones_like(weight))
    cut = use_cutmix & (weight < 1)
    side = (1 - weight).sqrt()
    center_y = torch.randint(0, height, (n,), device=device)
    center_x = torch.randint(0, width, (n,), device=device)
    half_h, half_w = (side * height / 2).round().long(), (side * width / 2).round().long()
    top, bottom = (center_y - half_h).clamp(0, height), (center_y + half_h).clamp(0, height)
    left, right = (center_x - half_w).clamp(0, width), (center_x + half_w).clamp(0, width)
    boxes = box_masks(top, left, bottom, right, height, width) & cut.view(-1, 1, 1, 1)
    area = ((bottom - top) * (right - left)).to(weight.dtype) / (height * width)
    weight = torch.where(cut, 1 - area, weight)
    partners = images.roll(1, 0)
    blended = torch.lerp(partners, images, torch.where(cut, 1.0, weight).view(-1, 1, 1, 1).to(images.dtype))
    mixed = torch.where(boxes, partners, blended)
    weight = weight.view(-1, 1).to(targets.dtype)
    return mixed, weight * targets + (1 - weight) * targets.roll(1, 0)


class AlternatingFlips:
    """airbench's alternating flip: each image flipped at random in the first epoch, then every other epoch.

    Whether training image ``i`` is flipped in epoch ``e`` is ``first[i] xor (e odd)``, with ``first``
    drawn once from ``seed``: each epoch flips exactly the images the epoch before did not. It
    depends only on the seed, the sample's index and the epoch, so a resumed run flips as an
    uninterrupted one would.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.first = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5

    def __call__(self, indices: Tensor, epoch: int) -> Tensor:
        """One bool per sample of ``indices``: flip it in ``epoch``."""
        return self.first[indices.cpu()] ^ bool(epoch % 2)


@dataclass(frozen=True)
class Augmentation:
    """What is done to training batches; see :class:`~datamodules.base.ClassificationDataModule` for each option."""

    translate: int = 0
    padding_mode: PaddingMode = "zeros"
    flip: FlipMode = "none"
    cutout: int = 0
    cutout_p: float = 1.0
    auto_augment: AutoAugmentName = "none"
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_p: float = 1.0
    mix_switch_p: float = 0.5

    def __post_init__(self) -> None:
        for name in ("translate", "cutout", "mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"--data.{name} must be 0 (off) or more, got {getattr(self, name)}")
        for name in ("cutout_p", "mix_p", "mix_switch_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--data.{name} is a probability, in [0, 1]; got {getattr(self, name)}")
        choices = {"padding_mode": PaddingMode, "flip": FlipMode, "auto_augment": AutoAugmentName}
        for name, kind in choices.items():
            if getattr(self, name) not in kind.__args__:
                raise ValueError(f"--data.{name} must be one of {', '.join(kind.__args__)}; got {getattr(self, name)}")

    def check_size(self, height: int, width: int) -> None:
        """Refuse a translation or a cutout at least as large as the images: it would shift out or erase them whole."""
        side = min(height, width)
        for name, does in (("translate", "shift the whole image out of view"), ("cutout", "erase whole images")):
            if getattr(self, name) >= side:
                raise ValueError(
                    f"--data.{name} {getattr(self, name)} is not smaller than the {height}x{width} images: it would "
                    f"{does}; give less than {side} (a quarter of the height is usual), or 0 for none"
                )

    @classmethod
    def resolve(cls, preset: str, height: int, **options: object) -> "Augmentation":
        """The ``preset``'s options for images ``height`` pixels high, with the ``options`` that are not None."""
        given = {name: value for name, value in options.items() if value is not None}
        return cls(**{**preset_options(preset, height), **given})

    @property
    def mixes(self) -> bool:
        """Whether training targets become soft (mixup or cutmix)."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_p > 0

    def pixels(self, images: Tensor, flip: Tensor) -> Tensor:
        """Crop, flip (where ``flip``, one bool per image) and RandAugment/TrivialAugmentWide, before normalization."""
        if self.translate or self.flip != "none":
            images = random_crop_flip(images, self.translate, self.padding_mode, flip)
        if self.auto_augment != "none":
            images = auto_augment(images, self.auto_augment)
        return images

    def normalized(self, images: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """Cutout, mixup and cutmix: on normalized images, where zero is the mean pixel."""
        if self.cutout:
            images = cutout(images, self.cutout, self.cutout_p)
        if self.mixes:
            return mix(images, labels, num_classes, self.mixup_alpha, self.cutmix_alpha, self.mix_p, self.mix_switch_p)
        return images, labels
