"""Optimizers of this project beyond PyTorch's own (any ``torch.optim.Optimizer`` works with ``--model.optimizer``)."""

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class MomentumSGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum, written out as an ``Optimizer`` subclass.

    The worked example of a custom optimizer: ``v = momentum * v + (grad + weight_decay * p)``, then
    ``p = p - lr * v``; the same update as ``torch.optim.SGD(momentum=..., dampening=0)``. The update
    runs on all parameters of a group at once (``torch._foreach_*``), as PyTorch's own optimizers do.

    Args:
        params: Parameters (or parameter groups) to optimize.
        lr: Learning rate.
        momentum: Momentum factor in [0, 1).
        weight_decay: L2 penalty added to the gradient.
    """

    def __init__(
        self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0
    ) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(f"need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for param in params:
                if "velocity" not in self.state[param]:
                    self.state[param]["velocity"] = torch.zeros_like(param)
            velocities = [self.state[param]["velocity"] for param in params]
            torch._foreach_mul_(velocities, group["momentum"])
            torch._foreach_add_(velocities, grads)
            torch._foreach_add_(params, velocities, alpha=-group["lr"])
        return loss


def parameter_groups(module: torch.nn.Module, decay_norm_and_bias: bool) -> list[dict[str, Any]]:
    """``module``'s parameters as optimizer groups: the weights, then biases and normalization parameters.

    Unless ``decay_norm_and_bias``, the second group has no weight decay (timm's and torchvision's
    recipes): decay pulls the scales of BatchNorm towards zero and regularizes nothing in a bias.
    They are told apart as timm does, by shape: one dimension or none. The first group takes the
    optimizer's own weight decay; empty groups are left out.
    """
    weights, others = [], []
    for parameter in module.parameters():
        (weights if parameter.dim() > 1 or decay_norm_and_bias else others).append(parameter)
    groups = [{"params": weights}, {"params": others, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]
