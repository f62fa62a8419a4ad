"""The tutorials' small ConvNet."""

from typing import Any

import torch
from torch import Tensor, nn

from models.activations import Activation, make_activation
from models.classifier import ImageClassifier


class CNN(ImageClassifier):
    """Conv-BatchNorm-ReLU-MaxPool blocks (32, 64, 128 channels), then a hidden layer and the classifier.

    Works unchanged for 1x28x28 (MNIST), 3x32x32 (CIFAR) and 1x8x8 (Digits) inputs: each block halves
    the height and width, so the input must be at least 2**len(channels) pixels on each side.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: (channels, height, width) of the input (from the datamodule).
        channels: Output channels of each 3x3 conv block.
        hidden_size: Width of the fully connected hidden layer.
        activation: Activation after each block and the hidden layer, as the MLP's ``activation``.
        dropout: Dropout probability before the classifier (0 disables it).
        channels_last: Keep weights and activations in channels-last memory layout, which the CPU
            (oneDNN) and GPU (cuDNN) convolution kernels run faster on; the results are the same.
        **kwargs: Loss, optimizer and schedule options of :class:`ImageClassifier`.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        channels: tuple[int, ...] = (32, 64, 128),
        hidden_size: int = 128,
        activation: Activation = "relu",
        dropout: float = 0.0,
        channels_last: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, input_shape=input_shape, **kwargs)
        in_channels, height, width = input_shape
        smallest = 2 ** len(channels)
        if height < smallest or width < smallest:
            raise ValueError(
                f"CNN with {len(channels)} pooling blocks needs inputs of at least {smallest}x{smallest}, "
                f"got {height}x{width}: resize the images or use fewer --model.channels"
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                make_activation(activation),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
            height, width = height // 2, width // 2
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden_size),
            make_activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_classes),
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x.contiguous(memory_format=self.memory_format)))
