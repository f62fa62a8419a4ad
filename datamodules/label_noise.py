"""Labels changed at random on purpose: a known set of wrong labels, to measure how many of them are found."""

import torch
from torch import Tensor


def change_labels(
    labels: Tensor, positions: Tensor, fraction: float, num_classes: int, seed: int
) -> tuple[Tensor, Tensor]:
    """``labels`` with ``round(fraction * len(positions))`` of those at ``positions`` changed, each to one of the
    other classes drawn uniformly, seeded by ``seed``; returns the new labels and the positions changed, sorted."""
    generator = torch.Generator().manual_seed(seed)
    count = round(fraction * len(positions))
    changed = positions[torch.randperm(len(positions), generator=generator)[:count]].sort().values
    shift = torch.randint(1, num_classes, (count,), generator=generator)  # 1..K-1: never the label itself
    changed_labels = labels.clone()
    changed_labels[changed] = (labels[changed] + shift) % num_classes
    return changed_labels, changed
