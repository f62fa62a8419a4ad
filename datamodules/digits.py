"""scikit-learn's bundled handwritten digits: real data that needs no download."""

from typing import Any

import torch

from datamodules.base import ClassificationDataModule, split_indices
from datamodules.batches import TensorImages


class Digits(ClassificationDataModule):
    """scikit-learn's 8x8 handwritten digits: 1,797 real grey images, 10 classes, bundled with scikit-learn.

    There is no official test split: a seeded ``test_size`` part is held out first, then the
    validation part. Images are normalized with the training part's mean and standard deviation.

    Args:
        test_size: Test part, as a fraction (< 1) or a number of images.
        num_workers: Data-loading worker processes; the data is in memory, so none are needed.
        **kwargs: Loader and split options of :class:`ClassificationDataModule`.
    """

    input_shape = (1, 8, 8)
    num_classes = 10
    class_names = [str(digit) for digit in range(10)]
    flips_allowed = False

    def __init__(self, test_size: float = 0.2, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(num_workers=num_workers, **kwargs)
        if test_size <= 0:
            raise ValueError(f"test_size must be positive (a fraction below 1 or a count), got {test_size}")
        self.test_size = test_size

    def setup(self, stage: str) -> None:
        """Split the 1,797 images into train, validation and test parts (seeded, disjoint)."""
        from sklearn.datasets import load_digits  # here: scikit-learn takes seconds to import

        digits = load_digits()
        # The 17 grey levels 0..16 become 0..255, so these images go through the same uint8 path as all others.
        images = (torch.tensor(digits.images) * 255 / 16).round().to(torch.uint8).unsqueeze(1)
        labels = torch.tensor(digits.target)
        if self.folds:  # the test part first, then the folds of the rest
            rest, test = split_indices(len(labels), [self.test_size], self.seed)
            labels = self.with_label_noise(labels, rest)
            train, val = ([rest[i] for i in part] for part in self.split_train_val(labels[torch.as_tensor(rest)]))
        else:
            train, val, test = split_indices(len(labels), [self.val_count(len(labels)), self.test_size], self.seed)
            labels = self.with_label_noise(labels, train + val)
        data = TensorImages(images, labels)
        self.image_ids = {"train": train, "val": val, "test": test}  # indices in load_digits()
        pixels = images[train].double() / 255
        self.mean, self.std = [pixels.mean().item()], [pixels.std().item()]
        self.train_set, self.val_set, self.test_set = data.subset(train), data.subset(val), data.subset(test)
