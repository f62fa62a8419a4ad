"""Your own images in class folders: root/train/<class>/*.png, with optional val/ and test/ folders."""

import contextlib
import functools
import hashlib
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets

from datamodules.base import ClassificationDataModule, dataset_labels, split_indices
from datamodules.batches import TensorImages
from datamodules.errors import DataError
from datamodules.names import shown_name
from datamodules.transforms import to_uint8_tensor

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
CACHE_FOLDER = ".tensor_cache"  # under root: decoded images, reused while the files are unchanged
# In the cache's name: caches decoded another way (1: 16-bit images clipped, 2: EXIF orientation
# ignored) are not reused.
DECODING = 3
PIXEL_LIMIT_VARIABLE = "MAX_IMAGE_PIXELS"  # sets PIL's guard against decompression bombs (0: no limit)
SIZE_SAMPLE = 100  # training images whose median size is the default image size
MAX_DEFAULT_SIDE = 1024  # larger default sizes are refused: images that large need --data.image_size
Image.init()  # registers every format PIL reads, for IMAGE_EXTENSIONS
IMAGE_EXTENSIONS = frozenset(ext for ext, format in Image.registered_extensions().items() if format in Image.OPEN)
ROTATED_A_QUARTER = {5, 6, 7, 8}  # EXIF orientations that swap the stored width and height
# Decoded images whose cache folder could not be written, kept for the rest of the run, and those folders.
_KEPT_IN_MEMORY: dict[Path, TensorImages] = {}
_UNWRITABLE: set[Path] = set()


def _set_pixel_limit() -> None:
    """Set PIL's decompression-bomb limit from the environment variable ``MAX_IMAGE_PIXELS`` where it is set."""
    value = os.environ.get(PIXEL_LIMIT_VARIABLE)
    if value is None:
        return
    if not value.isdigit():
        raise ValueError(f"{PIXEL_LIMIT_VARIABLE}={value}: give a number of pixels, or 0 for no limit")
    Image.MAX_IMAGE_PIXELS = int(value) or None


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Any error in reading the image file at ``path`` as one DataError that names it and says what to do."""
    _set_pixel_limit()
    try:
        yield
    except Image.DecompressionBombError as err:
        raise DataError(
            f"cannot read the image {path} ({err}): shrink it, or raise the limit with the environment variable "
            f"{PIXEL_LIMIT_VARIABLE} (PIL refuses images of more than twice that many pixels; 0: no limit)"
        ) from err
    except OSError as err:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        reason = "not an image, or damaged" if isinstance(err, UnidentifiedImageError) else str(err)
        raise DataError(f"cannot read the image {path} ({reason}): remove or replace it") from err


def open_image(path: str) -> Image.Image:
    """The decoded image in the file at ``path`` (the first frame of an animation), in its own colour mode,
    turned upright by its EXIF orientation tag as phones store photos."""
    with _reading(path), Image.open(path) as image:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return image


def image_header(path: str) -> tuple[str, int, int]:
    """The colour mode, height and width (upright, after its EXIF orientation) of the image at ``path``, read
    from its header without decoding it."""
    with _reading(path), Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(ExifTags.Base.Orientation) in ROTATED_A_QUARTER:
            width, height = height, width
        return image.mode, height, width


def _is_below(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _links_last(folder: str, names: list[str]) -> list[str]:
    """``names`` sorted, symbolic links after the rest: a file or folder is read where it is, not through a link."""
    return sorted(names, key=lambda name: (os.path.islink(os.path.join(folder, name)), name))


def scan_images(
    folder: Path, within: Path | None = None, seen: set[str] | None = None
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files below ``folder`` (any depth, sorted; every extension PIL reads), and what was left out, why.

    Symbolic links are read as the files they point to, each real file once (``seen``: the real paths read
    already, shared by the class folders of one split). A link to a folder is followed only into a folder
    below ``folder`` not scanned yet: never to ``.``, ``..``, a loop or another class's folder. A link to an
    image inside ``within`` (the split's folder) but outside ``folder`` (another class's image) is left out.
    """
    seen = set() if seen is None else seen
    top = os.path.realpath(folder)
    within_real = os.path.realpath(within or folder)
    visited = {top}
    files: list[Path] = []
    left_out: list[tuple[Path, str]] = []
    for current, dirnames, filenames in os.walk(folder, followlinks=True):
        followed = []
        for name in _links_last(current, dirnames):
            real = os.path.realpath(os.path.join(current, name))
            if _is_below(real, top) and real not in visited:
                visited.add(real)
                followed.append(name)
            else:
                left_out.append((Path(current, name), "a link to a folder outside its own, or scanned already"))
        dirnames[:] = followed  # os.walk descends only into these
        for name in _links_last(current, filenames):
            path = Path(current, name)
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            real = os.path.realpath(path)
            if real in seen:
                left_out.append((path, "a link to a file read already"))
            elif _is_below(real, within_real) and not _is_below(real, top):
                left_out.append((path, "a link to an image of another class"))
            else:
                seen.add(real)
                files.append(path)
    return sorted(files), left_out


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
    """torchvision's ImageFolder with the class list given, so val/ and test/ use train/'s label numbers, and
    with the files found by ``scan_images``: those left out are in ``left_out``."""

    def __init__(self, root: Path, classes: list[str], **kwargs: Any) -> None:
        self.given_classes = classes
        self.left_out: list[tuple[Path, str]] = []
        super().__init__(str(root), **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self.given_classes, {name: index for index, name in enumerate(self.given_classes)}

    def make_dataset(
        self, directory: str, class_to_idx: dict[str, int], *args: Any, allow_empty: bool = False, **kwargs: Any
    ) -> list[tuple[str, int]]:
        """(file, label) of the images in each class folder (``scan_images``); the links left out go to ``left_out``."""
        samples, seen, empty = [], set(), []
        for name, label in class_to_idx.items():
            files, left_out = scan_images(Path(directory, name), Path(directory), seen)
            samples += [(str(path), label) for path in files]
            self.left_out += left_out
            if not files:
                empty.append(name)
        if empty and not allow_empty:
            raise FileNotFoundError(f"Found no valid file for the classes {', '.join(empty)}")
        return samples


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
    seeded part of ``train/`` stands in for it. For cross-validation (``folds``), the folds split ``train/``
    (less the test part where there is no ``test/`` folder), and a ``val/`` folder is left out. Every file PIL
    reads is an image (the first frame of an animation), turned upright by its EXIF orientation; symbolic
    links are read as their files, each file once, and never out of their class folder (see ``scan_images``;
    the number left out is printed).
    Images are resized and converted to one colour mode. When they are held in memory (``in_memory``),
    they are decoded once and cached as tensors in ``cache_dir``, so later runs start at once; the cache is
    rebuilt when files change, and kept in memory for the run where it cannot be written.

    Args:
        root: Folder holding ``train/`` (and optionally ``val/``, ``test/``).
        image_size: Resize every image to this size: one number for a square, or [height, width];
            default: the median height and width of up to 100 training images, which must be at most
            1024 pixels (larger images need an ``image_size``).
        grayscale: Read images as 1-channel grey (true) or 3-channel RGB (false); default: grey if the
            first training image is.
        mean: Per-channel normalization mean; default: computed from the training part.
        std: Per-channel normalization standard deviation; default: computed from the training part.
        test_size: Test part taken from ``train/`` when there is no ``test/`` folder, as a fraction
            (< 1) or a number of images.
        stats_images: At most this many training images are read to compute ``mean`` and ``std``.
        cache_dir: Folder for the cache of decoded images; default: ``root/.tensor_cache``. Give another
            one where ``root`` is read-only.
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
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.cache_dir = cache_dir
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
        self.folders = self._scan()
        files = [path for path, _ in self.folders["train"].samples]
        sample = min(SIZE_SAMPLE, len(files))
        picks = [files[i * len(files) // sample] for i in range(sample)]  # spread over every class
        modes, heights, widths = zip(*map(image_header, picks), strict=True)
        if grayscale is None:
            grayscale = modes[0] in GREY_MODES
        if image_size is None:
            image_size = (statistics.median_low(heights), statistics.median_low(widths))
            if max(image_size) > MAX_DEFAULT_SIDE:
                raise DataError(
                    f"the training images in {train_dir} are {image_size[0]}x{image_size[1]} pixels (the median of "
                    f"{sample}), too large to train on: resize them as they are read with --data.image_size, "
                    "e.g. 224 (or [height, width])"
                )
        elif isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = tuple(image_size)
        self.grayscale = grayscale
        channels = 1 if grayscale else 3
        self.input_shape = (channels, *self.image_size)
        for folder in self.folders.values():
            folder.loader = functools.partial(load_image, mode="L" if grayscale else "RGB")
            folder.transform = to_uint8_tensor(resize_to=self.image_size)
        if (mean is None) != (std is None):
            raise ValueError("give both --data.mean and --data.std, or neither to compute them from the data")
        for name, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != channels:
                raise ValueError(f"--data.{name} needs {channels} value(s), one per image channel, got {len(stats)}")
        self.mean, self.std = mean, std  # type: ignore[assignment]  # None until setup() computes them
        if self.label_noise:
            raise ValueError(
                "label_noise is for MNIST, FashionMNIST, CIFAR10, CIFAR100 and Digits: an image folder's labels are "
                "its class folders (move files between them in a copy to change some)"
            )
        if test_size <= 0:  # split_indices would make it an empty part, as it does for val_size 0
            raise ValueError(f"test_size must be positive (a fraction below 1 or a count), got {test_size}")
        self.test_size = test_size
        self.stats_images = stats_images

    def _scan(self) -> dict[str, _ClassFolder]:
        """The file lists of train/ and of whichever of val/ and test/ exist; prints how many links were left out."""
        folders = {}
        for split in ("train", "val", "test"):
            if not (self.root / split).is_dir():
                continue
            try:
                folders[split] = _ClassFolder(self.root / split, self.class_names, allow_empty=split != "train")
            except FileNotFoundError as err:  # "Found no valid file for the classes ..."
                raise DataError(
                    f"{self.root / split}: {err}: add images to those class folders, or remove them"
                ) from err
            if left_out := folders[split].left_out:
                named = ", ".join(shown_name(path.relative_to(self.root / split)) for path, _ in sorted(left_out)[:3])
                print(
                    f"Left out {len(left_out)} symbolic link(s) in {shown_name(self.root / split)} (each file is read "
                    f"once, and only from its own class folder): {named}{', ...' if len(left_out) > 3 else ''}",
                    flush=True,
                )
        return folders

    def _cache_path(self, split: str, folder: datasets.ImageFolder) -> Path:
        """Where the decoded images of ``folder`` are cached: named after its files, their sizes and times."""
        # A cache folder of one's own may serve several image folders: then their place is part of the key.
        place = None if self.cache_dir is None else str(self.root.resolve())
        key = repr((self.class_names, self.image_size, self.grayscale, DECODING, place))
        digest = hashlib.sha256(key.encode(errors="surrogateescape"))  # names that are not UTF-8 as their bytes
        for path, label in folder.samples:
            stat = os.stat(path)
            entry = f"{os.path.relpath(path, self.root)}:{label}:{stat.st_size}:{stat.st_mtime_ns}\n"
            digest.update(entry.encode(errors="surrogateescape"))
        height, width = self.image_size
        mode = "L" if self.grayscale else "RGB"
        cache_dir = self.root / CACHE_FOLDER if self.cache_dir is None else Path(self.cache_dir)
        return cache_dir / f"{split}-{height}x{width}-{mode}-{digest.hexdigest()[:16]}.pt"

    def _decoded(self, split: str, folder: datasets.ImageFolder) -> TensorImages:
        """All images of ``folder`` (``root/split``) as uint8 tensors: from the cache, or decoded once and cached
        (in memory for the rest of the run where the cache folder cannot be written)."""
        path = self._cache_path(split, folder)
        if path in _KEPT_IN_MEMORY:
            return _KEPT_IN_MEMORY[path]
        if path.is_file():
            try:
                return TensorImages(**torch.load(path, weights_only=True))
            except Exception as err:  # a cache from an interrupted or older run: decode again
                print(f"Ignoring the unreadable image cache {shown_name(path)} ({err}); decoding again", flush=True)
        where = shown_name(self.root / split)
        print(f"Decoding the {len(folder):,} images in {where} into memory (once: then cached)", flush=True)
        # A generator of its own: a DataLoader without one draws its workers' seed from the global generator,
        # and a run that builds the cache would then train on other random augmentations than one that reads it.
        loader = DataLoader(folder, batch_size=256, num_workers=self.num_workers, generator=torch.Generator())
        batches = list(loader)
        if batches:
            data = TensorImages(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
        else:
            data = TensorImages(torch.empty(0, *self.input_shape, dtype=torch.uint8), torch.empty(0))
        if path.parent not in _UNWRITABLE:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.tmp")
                torch.save({"images": data.images, "labels": data.labels}, partial)
                os.replace(partial, path)  # atomic: a crash never leaves a truncated cache under the final name
                return data
            except OSError as err:
                _UNWRITABLE.add(path.parent)
                print(
                    f"Could not cache the decoded images in {shown_name(path.parent)} ({err}): they are kept in memory "
                    "for this run only; give --data.cache_dir to cache them elsewhere",
                    flush=True,
                )
        _KEPT_IN_MEMORY[path] = data
        return data

    def prepare_data(self) -> None:
        """Decode the images into the cache once, on one process per machine, when they are held in memory."""
        if self.keep_in_memory(sum(map(len, self.folders.values()))):
            for split, folder in self.folders.items():
                self._decoded(split, folder)

    def setup(self, stage: str) -> None:
        """Read the images, split off what has no folder of its own, and settle the normalization.

        The parts are built on the first call; the later stages of a run (test after fit) reuse them.
        """
        if self.train_set is not None:
            return
        folders = self.folders
        in_memory = self.keep_in_memory(sum(map(len, folders.values())))
        parts = {split: self._decoded(split, folder) if in_memory else folder for split, folder in folders.items()}
        train = parts["train"]
        train_idx, val_idx, test_idx = self._split_train(dataset_labels(train), "val" in parts, "test" in parts)
        if self.mean is None:
            self.mean, self.std = channel_stats(train, train_idx, self.stats_images, self.seed)

        def part(indices: list[int]) -> Dataset:
            return train.subset(indices) if isinstance(train, TensorImages) else Subset(train, indices)

        files = {split: [path for path, _ in folder.samples] for split, folder in folders.items()}
        self.train_set = part(train_idx)
        self.val_set = parts["val"] if val_idx is None else part(val_idx)
        self.test_set = parts["test"] if test_idx is None else part(test_idx)
        self.image_ids = {
            split: files[split] if indices is None else [files["train"][i] for i in indices]
            for split, indices in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        }

    def _split_train(
        self, labels: torch.Tensor, has_val: bool, has_test: bool
    ) -> tuple[list[int], list[int] | None, list[int] | None]:
        """Indices in train/ of the training part, and of the validation and test parts where they have no folder
        of their own (None where they have). With folds, the validation part is the fold, and a val/ folder is
        left out: the folds split train/ (less the test part where there is no test/ folder)."""
        test_sizes = [] if has_test else [self.test_size]
        if self.folds:
            pool, *test = split_indices(len(labels), test_sizes, self.seed, labels)
            train, val = ([pool[i] for i in part] for part in self.split_train_val(labels[torch.as_tensor(pool)]))
            return train, val, test[0] if test else None
        sizes = ([] if has_val else [self.val_count(len(labels))]) + test_sizes
        train, *held_out = split_indices(len(labels), sizes, self.seed, labels)
        val = None if has_val else held_out.pop(0)
        return train, val, held_out[0] if held_out else None
