"""ResNet-9, the network of the CIFAR-10 speed records (David Page's DAWNBench entry, airbench)."""

from typing import Any

import torch
from torch import Tensor, nn

from models.classifier import ImageClassifier
from models.tta import TTAName

# The logits are multiplied by this constant, as in the speed-record recipes: it keeps the loss of the
# randomly initialised network low and lets the network train at a high learning rate.
LOGIT_SCALE = 0.125


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 convolution (same size) followed by BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """``x + block(x)`` where the block is two conv-BatchNorm-ReLU layers of the same width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class ResNet9(ImageClassifier):
    """ResNet-9: a prep conv, three conv-MaxPool layers (the first and last with a residual block), global max pool.

    The layout of the CIFAR-10 speed records: prep conv (64 channels); layer 1: conv 128, max pool,
    residual of two convs; layer 2: conv 256, max pool; layer 3: conv 512, max pool, residual; then
    global max pooling, a linear classifier and a fixed logit scale of 0.125. The global pooling makes
    any input of at least 8x8 work (3x32x32 CIFAR, 1x28x28 MNIST, 1x8x8 Digits).

    Unlike the other models, it averages the logits over the mirror image in validation, test and
    prediction by default (``tta`` flip), as the speed records do; not for digits, which a mirror
    turns into other shapes.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: (channels, height, width) of the input (from the datamodule).
        width: Multiplier of the channel counts: 1 gives 64, 128, 256 and 512; 0.25 gives 16, 32, 64, 128.
        tta: Test-time augmentation, as :class:`ImageClassifier`'s; default: flip, or none for digits.
        channels_last: Keep weights and activations in channels-last memory layout, which the CPU
            (oneDNN) and GPU (cuDNN) convolution kernels run faster on; the results are the same.
        **kwargs: Loss, optimizer and schedule options of :class:`ImageClassifier`.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        width: float = 1.0,
        tta: TTAName | None = None,
        channels_last: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, input_shape=input_shape, tta=tta, **kwargs)
        in_channels, height, image_width = input_shape
        if height < 8 or image_width < 8:
            raise ValueError(
                f"ResNet9 halves the image three times and needs inputs of at least 8x8, "
                f"got {height}x{image_width}: use data with larger images (ImageFolder resizes them with "
                "--data.image_size)"
            )
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        c1, c2, c3, c4 = (max(1, round(channels * width)) for channels in (64, 128, 256, 512))
        self.net = nn.Sequential(
            conv_bn(in_channels, c1),
            conv_bn(c1, c2),
            nn.MaxPool2d(2),
            Residual(c2),
            conv_bn(c2, c3),
            nn.MaxPool2d(2),
            conv_bn(c3, c4),
            nn.MaxPool2d(2),
            Residual(c4),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(c4, num_classes, bias=False),
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format)) * LOGIT_SCALE
