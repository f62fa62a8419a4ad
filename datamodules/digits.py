"""scikit-learn's bundled handwritten digits: real data that needs no download."""

from typing import Any

import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from datamodules.base import ClassificationDataModule, split_indices


class Digits(ClassificationDataModule):
    """scikit-learn's 8x8 handwritten digits: 1,797 real grey images, 10 classes, bundled with scikit-learn.

    There is no official test split: a seeded ``test_size`` part is held out first, then the
    validation part. Images are scaled to [0, 1] and normalized with the training part's statistics.

    Args:
        test_size: Test part, as a fraction (< 1) or a number of images.
        num_workers: Data-loading worker processes; the data is in memory, so none are needed.
        **kwargs: Loader and split options of :class:`ClassificationDataModule`.
    """

    input_shape = (1, 8, 8)
    num_classes = 10
    class_names = [str(digit) for digit in range(10)]

    def __init__(self, test_size: float = 0.2, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(num_workers=num_workers, **kwargs)
        if test_size <= 0:
            raise ValueError(f"test_size must be positive (a fraction below 1 or a count), got {test_size}")
        self.test_size = test_size

    def setup(self, stage: str) -> None:
        """Split the 1,797 images into train, validation and test parts (seeded, disjoint)."""
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
        labels = torch.tensor(digits.target, dtype=torch.long)
        train, val, test = split_indices(len(labels), [self.val_size, self.test_size], self.seed)
        mean, std = images[train].mean(), images[train].std()
        images = (images - mean) / std
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])
        self.test_set = TensorDataset(images[test], labels[test])
