"""Loose image files, read with a trained model's preprocessing: to classify them, or to test the model on them."""

from collections.abc import Sequence
from pathlib import Path

import torch

from datamodules.base import ClassificationDataModule
from datamodules.batches import TensorImages
from datamodules.errors import DataError, first_line
from datamodules.image_folder import load_image, scan_images
from datamodules.transforms import to_uint8_tensor


def find_images(paths: Sequence[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``paths`` with each folder replaced by the image files below it (see ``scan_images``), and the symbolic
    links left out there, with why.

    Files given by name are kept whatever their extension, so that an unreadable one is reported.
    """
    files: list[Path] = []
    left_out: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if path.is_dir():
            found, left = scan_images(path)
            files += found
            left_out += left
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist: give image files or folders that hold them")
    return files, left_out


class ImageFiles(ClassificationDataModule):
    """Image files resized and converted to what a trained model takes, for ``Trainer.predict`` or ``Trainer.test``.

    Each file is decoded once in ``setup``, converted to grey or RGB and resized to the model's
    input size, then normalized with the model's statistics like every batch of this project. A file
    that cannot be read is left out and listed in ``skipped``, as are symbolic links that lead out of their
    folder or to a file read already. A file in a folder named after one of
    ``class_names`` has that class as its label; any other has the label -1.

    Args:
        paths: Image files, or folders searched (at any depth) for image files.
        class_names: The model's classes, in label order.
        input_shape: The model's input (channels, height, width).
        mean: Per-channel normalization mean (0-1 scale) the model was trained with.
        std: Per-channel normalization standard deviation the model was trained with.
        batch_size: Images per batch.
    """

    def __init__(
        self,
        paths: list[str],
        class_names: list[str],
        input_shape: tuple[int, int, int],
        mean: list[float],
        std: list[float],
        batch_size: int = 128,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=0, in_memory=True, on_device=False)
        self.paths = paths
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.input_shape = tuple(input_shape)
        self.mean, self.std = mean, std
        self.files: list[Path] = []
        self.skipped: list[tuple[Path, str]] = []

    def setup(self, stage: str) -> None:
        """Decode every readable file once; list the others in ``skipped``."""
        if self.test_set is not None:
            return
        channels, height, width = self.input_shape
        to_tensor = to_uint8_tensor(resize_to=(height, width))
        label_of = {name: label for label, name in enumerate(self.class_names)}
        images, labels = [], []
        files, self.skipped = find_images(self.paths)
        for path in files:
            try:
                images.append(to_tensor(load_image(str(path), mode="L" if channels == 1 else "RGB")))
            except DataError as err:  # not an image, or a damaged one
                self.skipped.append((path, f"cannot read it as an image ({first_line(err.__cause__ or err)})"))
                continue
            self.files.append(path)
            labels.append(label_of.get(path.parent.name, -1))
        if not images:
            raise DataError(f"no readable image files in {', '.join(map(str, self.paths))}")
        self.test_set = TensorImages(torch.stack(images), torch.tensor(labels))
