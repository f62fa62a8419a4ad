"""What every datamodule shares: seeded splits, data loaders, and the data's shape and classes."""

import os
from collections.abc import Sequence
from itertools import accumulate, pairwise

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from datamodules.errors import DataError


def split_indices(n: int, sizes: Sequence[float], seed: int) -> list[list[int]]:
    """Seeded random split of ``range(n)`` into the rest followed by one part per entry of ``sizes``.

    A size below 1 is a fraction of ``n``, a size of 1 or more a number of samples. Each part keeps
    the shuffled order, so that data stored class by class (image folders) is mixed in every batch.
    """
    counts = [round(size * n) if size < 1 else int(size) for size in sizes]
    if any(count < 1 for count in counts) or sum(counts) >= n:
        raise DataError(
            f"cannot split {n} samples into parts of {list(sizes)}: "
            "each part needs at least one sample, and some must remain for training"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    bounds = list(accumulate([n - sum(counts), *counts]))
    return [order[: bounds[0]]] + [order[start:end] for start, end in pairwise(bounds)]


def default_num_workers() -> int:
    """Loader worker processes when none are asked for: one per CPU core available, at most 4."""
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class ClassificationDataModule(LightningDataModule):
    """Base of every datamodule: subclasses fill ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

    Subclasses also define ``num_classes``, ``input_shape`` (channels, height, width) and
    ``class_names``; the CLI passes the first two to the model.

    Args:
        batch_size: Samples per batch, per device.
        num_workers: Data-loading worker processes; default: one per CPU core, at most 4.
        pin_memory: Page-locked host memory for faster copies to a GPU; default: on when CUDA is available.
        val_size: Validation part of the training data, as a fraction (< 1) or a number of samples.
        seed: Seed of the train/validation split (independent of the training seed).
    """

    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: list[str]

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        val_size: float = 0.1,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
        if val_size <= 0:
            raise ValueError(f"val_size must be positive (a fraction below 1 or a count), got {val_size}")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.val_size = val_size
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its data loaders are asked for")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
