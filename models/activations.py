"""Activation functions selectable by name, by import path, or as a function of your own."""

import copy
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

ActivationName = Literal["relu", "leaky_relu", "elu", "gelu", "silu", "mish", "tanh", "sigmoid", "swish"]
# A name above, an nn.Module class (``my_file.MyActivation``) or a function of a tensor (``torch.sin``).
Activation = ActivationName | Callable


class Swish(nn.Module):
    """Swish with a learnable slope: ``x * sigmoid(beta * x)`` (Ramachandran et al., 2017).

    The worked example of a custom activation: with ``beta`` fixed at 1 it is ``nn.SiLU``; here each
    layer learns its own ``beta``.

    Args:
        beta: Initial slope of the sigmoid gate.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.beta * x)


class Lambda(nn.Module):
    """A plain function of a tensor as a module, so it can sit in ``nn.Sequential``."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return getattr(self.function, "__qualname__", repr(self.function))


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "swish": Swish,
}


def make_activation(activation: Activation) -> nn.Module:
    """A new activation module: from a name in ``ACTIVATIONS``, an ``nn.Module`` class, or a function."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[activation]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):  # an instance with its own options (class_path and init_args)
        return copy.deepcopy(activation)
    return Lambda(activation)
