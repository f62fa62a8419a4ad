"""Your own images in class folders: root/train/<class>/*.png, with optional val/ and test/ folders."""

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets

from datamodules.base import ClassificationDataModule, dataset_labels, split_indices
from datamodules.batches import TensorImages
from datamodules.errors import DataError
from datamodules.transforms import to_uint8_tensor

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
CACHE_FOLDER = ".tensor_cache"  # under root: decoded images, reused while the files are unchanged
DECODING = 2  # in the cache's name: caches decoded another way (1: 16-bit images clipped) are not reused


def open_image(path: str) -> Image.Image:
    """The decoded image in the file at ``path``, in its own colour mode."""
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except OSError as err:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        reason = "not an image, or damaged" if isinstance(err, UnidentifiedImageError) else str(err)
        raise DataError(f"cannot read the image {path} ({reason}): remove or replace it") from err


def to_8_bits(image: Image.Image, path: str) -> Image.Image:
    """``image`` with 8 bits per channel, scaled from its own range, and with any transparency over black.

    PIL's own conversion of 16-bit and 32-bit images to 8 bits clips every value above 255 to 255
    instead of scaling. Here 16-bit integers (0-65535) are divided by 257 and floats (0-1) times
    255, both rounded; 32-bit integers are read as 16-bit values. A transparent pixel counts as its
    colour times its opacity (over black, what dropping the alpha channel gives for the usual fully
    transparent black), so that hidden colours behind transparent pixels never reach the model.
    """
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 1 / 257 if image.mode.startswith("I") else 255
        if values.size and not (values.min() >= 0 and values.max() * scale <= 255):
            top = "65535 (16 bits)" if image.mode.startswith("I") else "1"
            raise DataError(
                f"the image {path} ({image.mode} mode) holds values from {values.min():g} to {values.max():g}, "
                f"outside 0 to {top}: save it with 8 or 16 bits per channel"
            )
        return Image.fromarray(np.rint(values * scale).astype(np.uint8), mode="L")
    if image.has_transparency_data:
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, image.convert("RGBA")).convert("RGB")
    return image


def load_image(path: str, mode: str) -> Image.Image:
    """The image in the file at ``path`` as 8 bits per channel (see ``to_8_bits``), in ``mode`` ("L" or "RGB").

    Every path that reads images (training, the cache, predict.py, test.py --images) goes through here.
    """
    return to_8_bits(open_image(path), path).convert(mode)


class _ClassFolder(datasets.ImageFolder):
    """torchvision's ImageFolder with the class list given, so val/ and test/ use train/'s label numbers."""

    def __init__(self, root: Path, classes: list[str], **kwargs: Any) -> None:
        self.given_classes = classes
        super().__init__(str(root), **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self.given_classes, {name: index for index, name in enumerate(self.given_classes)}


def channel_stats(dataset: Dataset, indices: list[int], max_images: int, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (0-1 scale) of up to ``max_images`` seeded picks from ``indices``."""
    generator = torch.Generator().manual_seed(seed)
    picks = [indices[i] for i in torch.randperm(len(indices), generator=generator)[:max_images].tolist()]
    total = total_sq = None
    pixels = 0
    for index in picks:
        image = dataset[index][0].double().flatten(1) / 255
        total = image.sum(1) if total is None else total + image.sum(1)
        total_sq = (image**2).sum(1) if total_sq is None else total_sq + (image**2).sum(1)
        pixels += image.shape[1]
    mean = total / pixels
    std = (total_sq / pixels - mean**2).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


class ImageFolder(ClassificationDataModule):
    """Your own images, in folders named after their classes: root/train/<class name>/<image files>.

    ``root/val/`` and ``root/test/`` are optional and laid out the same way; where one is missing, a
    seeded part of ``train/`` stands in for it. Images are resized and converted to one colour mode.
    When they are held in memory (``in_memory``), they are decoded once and cached as tensors in
    ``root/.tensor_cache/``, so later runs start at once; the cache is rebuilt when files change.

    Args:
        root: Folder holding ``train/`` (and optionally ``val/``, ``test/``).
        image_size: Resize every image to this size: one number for a square, or [height, width];
            default: the size of the first training image.
        grayscale: Read images as 1-channel grey (true) or 3-channel RGB (false); default: grey if the
            first training image is.
        mean: Per-channel normalization mean; default: computed from the training part.
        std: Per-channel normalization standard deviation; default: computed from the training part.
        test_size: Test part taken from ``train/`` when there is no ``test/`` folder, as a fraction
            (< 1) or a number of images.
        stats_images: At most this many training images are read to compute ``mean`` and ``std``.
        **kwargs: Loader and split options of :class:`ClassificationDataModule`.
    """

    def __init__(
        self,
        root: str,
        image_size: int | tuple[int, int] | None = None,
        grayscale: bool | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        test_size: float = 0.1,
        stats_images: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        train_dir = self.root / "train"
        if not train_dir.is_dir():
            raise DataError(
                f"no image folder at {train_dir}: put your images in {train_dir}/<class name>/<image files>"
            )
        self.class_names = sorted(p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(self.class_names) < 2:
            raise DataError(
                f"{train_dir} needs at least two class folders (<class name>/<image files>), "
                f"found {len(self.class_names)}"
            )
        self.num_classes = len(self.class_names)
        first = self._first_image(train_dir)
        if grayscale is None:
            grayscale = first.mode in GREY_MODES
        if image_size is None:
            image_size = (first.height, first.width)
        elif isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.grayscale = grayscale
        channels = 1 if grayscale else 3
        self.input_shape = (channels, *self.image_size)
        if (mean is None) != (std is None):
            raise ValueError("give both --data.mean and --data.std, or neither to compute them from the data")
        for name, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != channels:
                raise ValueError(f"--data.{name} needs {channels} value(s), one per image channel, got {len(stats)}")
        self.mean, self.std = mean, std  # type: ignore[assignment]  # None until setup() computes them
        if self.folds:
            raise ValueError(
                "cross-validation (folds) is not supported for ImageFolder yet: use MNIST, CIFAR or Digits"
            )
        if test_size <= 0:  # split_indices would make it an empty part, as it does for val_size 0
            raise ValueError(f"test_size must be positive (a fraction below 1 or a count), got {test_size}")
        self.test_size = test_size
        self.stats_images = stats_images

    def _first_image(self, train_dir: Path) -> Image.Image:
        for class_dir in sorted(train_dir.iterdir()):
            for path in sorted(class_dir.iterdir()) if class_dir.is_dir() else ():
                if path.suffix.lower() in datasets.folder.IMG_EXTENSIONS:
                    return open_image(str(path))
        raise DataError(f"no image files ({', '.join(datasets.folder.IMG_EXTENSIONS)}) under {train_dir}")

    def _folder(self, split: str) -> datasets.ImageFolder:
        loader = functools.partial(load_image, mode="L" if self.grayscale else "RGB")
        try:
            return _ClassFolder(
                self.root / split,
                self.class_names,
                loader=loader,
                transform=to_uint8_tensor(resize_to=self.image_size),
                allow_empty=split != "train",
            )
        except FileNotFoundError as err:  # "Found no valid file for the classes ..."
            raise DataError(f"{self.root / split}: {err}: add images to those class folders, or remove them") from err

    def _folders(self) -> dict[str, datasets.ImageFolder]:
        """The file lists of train/ and of whichever of val/ and test/ exist, each folder scanned once."""
        return {split: self._folder(split) for split in ("train", "val", "test") if (self.root / split).is_dir()}

    def _cache_path(self, split: str, folder: datasets.ImageFolder) -> Path:
        """Where the decoded images of ``folder`` are cached: named after its files, their sizes and times."""
        digest = hashlib.sha256(repr((self.class_names, self.image_size, self.grayscale, DECODING)).encode())
        for path, label in folder.samples:
            stat = os.stat(path)
            digest.update(f"{os.path.relpath(path, self.root)}:{label}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        height, width = self.image_size
        mode = "L" if self.grayscale else "RGB"
        return self.root / CACHE_FOLDER / f"{split}-{height}x{width}-{mode}-{digest.hexdigest()[:16]}.pt"

    def _decoded(self, split: str, folder: datasets.ImageFolder) -> TensorImages:
        """All images of ``folder`` (``root/split``) as uint8 tensors: from the cache, or decoded once and cached."""
        path = self._cache_path(split, folder)
        if path.is_file():
            try:
                return TensorImages(**torch.load(path, weights_only=True))
            except Exception as err:  # a cache from an interrupted or older run: decode again
                print(f"Ignoring the unreadable image cache {path} ({err}); decoding again", flush=True)
        print(f"Decoding the {len(folder):,} images in {self.root / split} into memory (once: then cached)", flush=True)
        # A generator of its own: a DataLoader without one draws its workers' seed from the global generator,
        # and a run that builds the cache would then train on other random augmentations than one that reads it.
        loader = DataLoader(folder, batch_size=256, num_workers=self.num_workers, generator=torch.Generator())
        batches = list(loader)
        if batches:
            data = TensorImages(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
        else:
            data = TensorImages(torch.empty(0, *self.input_shape, dtype=torch.uint8), torch.empty(0))
        try:
            path.parent.mkdir(exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"images": data.images, "labels": data.labels}, partial)
            os.replace(partial, path)  # atomic: a crash never leaves a truncated cache under the final name
        except OSError as err:
            print(f"Could not cache the decoded images in {path.parent} ({err}); they are decoded again next run")
        return data

    def prepare_data(self) -> None:
        """Decode the images into the cache once, on one process per machine, when they are held in memory."""
        folders = self._folders()
        if self.keep_in_memory(sum(map(len, folders.values()))):
            for split, folder in folders.items():
                self._decoded(split, folder)

    def setup(self, stage: str) -> None:
        """Read the images, split off what has no folder of its own, and settle the normalization.

        The parts are built on the first call; the later stages of a run (test after fit) reuse them.
        """
        if self.train_set is not None:
            return
        folders = self._folders()
        in_memory = self.keep_in_memory(sum(map(len, folders.values())))
        parts = {split: self._decoded(split, folder) if in_memory else folder for split, folder in folders.items()}
        sizes = ([] if "val" in parts else [self.val_size]) + ([] if "test" in parts else [self.test_size])
        train_idx, *held_out = split_indices(len(parts["train"]), sizes, self.seed, dataset_labels(parts["train"]))
        train = parts["train"]
        if self.mean is None:
            self.mean, self.std = channel_stats(train, train_idx, self.stats_images, self.seed)

        def part(indices: list[int]) -> Dataset:
            return train.subset(indices) if isinstance(train, TensorImages) else Subset(train, indices)

        self.train_set = part(train_idx)
        self.val_set = parts["val"] if "val" in parts else part(held_out.pop(0))
        self.test_set = parts["test"] if "test" in parts else part(held_out.pop(0))
