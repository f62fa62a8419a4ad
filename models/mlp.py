"""The tutorials' fully connected networks as one configurable model."""

import math
from typing import Any

from torch import Tensor, nn

from models.activations import Activation, make_activation
from models.classifier import ImageClassifier


class MLP(ImageClassifier):
    """Fully connected classifier: flatten, then Linear [-BatchNorm] -activation [-Dropout] per hidden layer.

    The default hidden sizes 500-256 are the tutorial's network (784-500-256-10 on MNIST); 128 and
    128-64 are its smaller variants (``--model.hidden_sizes [128,64]``).

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: (channels, height, width) of the input (from the datamodule).
        hidden_sizes: Width of each hidden layer, input side first; empty for a linear classifier.
        activation: Activation after each hidden layer: a name (relu, leaky_relu, elu, gelu, silu, mish, tanh,
            sigmoid, swish), or the import path of an ``nn.Module`` class or of a function (``torch.sin``).
        dropout: Dropout probability after each hidden layer (0 disables it).
        batch_norm: Batch normalization after each hidden Linear layer.
        **kwargs: Loss, optimizer and schedule options of :class:`ImageClassifier`.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        hidden_sizes: tuple[int, ...] = (500, 256),
        activation: Activation = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, input_shape=input_shape, **kwargs)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(activation))
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
