"""A long-tailed subset of an image folder, built as the long-tailed CIFAR benchmarks are (Cao et al. 2019)."""

import errno
import math
import os
import shutil
from pathlib import Path

from datamodules.errors import DataError
from datamodules.image_folder import scan_images

SPLITS = ("train", "val", "test")


def long_tailed_counts(largest: int, num_classes: int, ratio: float) -> list[int]:
    """How many images class c (0 to k - 1) keeps: floor(largest * ratio^(-c / (k - 1))), from ``largest`` down to
    ``largest / ratio``: for CIFAR-10 at ratio 100, 5,000, 2,997, ..., 50 (12,406 in all), as Cao et al. 2019."""
    return [math.floor(largest * ratio ** (-c / (num_classes - 1))) for c in range(num_classes)]


def _link(source: Path, target: Path) -> bool:
    """Hard-link ``source`` at ``target``; copy it where the two are on different file systems. True if linked.

    Hard links, not symbolic ones: the image folder data module leaves out links that lead out of their folder.
    """
    try:
        os.link(source, target)
        return True
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, target)
        return False


def class_images(split: Path) -> dict[str, list[Path]]:
    """The image files of each class folder of ``split`` (hidden folders left out, as ``ImageFolder`` does), classes
    and files in name order."""
    classes = sorted(entry.name for entry in split.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    return {name: scan_images(split / name, within=split)[0] for name in classes}


def link_long_tailed(source: Path, output: Path, ratio: float) -> dict[str, dict[str, int]]:
    """Write at ``output`` a long-tailed copy of the image folder ``source`` (``train/<class>/``, optional ``val/``
    and ``test/``) made of links: class c of train/ in name order keeps its first ``long_tailed_counts`` images
    (the largest share being the smallest class's count), val/ and test/ stay whole.

    Returns each split's image count per class, and ``{"copied": n}`` for images copied, not linked.
    """
    if not ratio >= 1:
        raise DataError(f"--ratio must be at least 1 (the largest class's count over the smallest's), got {ratio}")
    if not (source / "train").is_dir():
        raise DataError(f"no image folder at {source / 'train'}: give the folder that holds train/<class name>/")
    if output.exists() and any(output.iterdir()):
        raise DataError(f"{output} exists and is not empty: give a new folder, or remove it")
    train = class_images(source / "train")
    if len(train) < 2 or min(map(len, train.values())) == 0:
        raise DataError(f"{source / 'train'} needs at least two class folders, each with images")
    keep = dict(zip(train, long_tailed_counts(min(map(len, train.values())), len(train), ratio), strict=True))
    counts: dict[str, dict[str, int]] = {"copied": {"images": 0}}
    for split in SPLITS:
        if not (source / split).is_dir():
            continue
        images = train if split == "train" else class_images(source / split)
        counts[split] = {}
        for name, files in images.items():
            kept = files[: keep[name]] if split == "train" else files
            (output / split / name).mkdir(parents=True)
            for path in kept:
                counts["copied"]["images"] += not _link(path, output / split / name / path.name)
            counts[split][name] = len(kept)
    return counts
