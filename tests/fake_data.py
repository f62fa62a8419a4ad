"""Small fake datasets written in the real on-disk formats, so the real loading code reads them."""

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def class_images(labels: np.ndarray, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """uint8 images (N, H, W, C): noise plus a bright band whose row depends on the class, so they are learnable."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), height, width, channels), dtype=np.uint8)
    rows = (labels * height // (labels.max() + 1)).astype(int)
    for image, row in zip(images, rows, strict=True):
        image[row : row + max(1, height // 10)] = 250
    return images


def _write_idx(path: Path, array: np.ndarray) -> None:
    type_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """MNIST-format IDX files under ``root/<folder>/raw`` (as torchvision's MNIST and FashionMNIST read them)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", class_images(labels, 28, 28, 1, seed)[..., 0])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar(root: Path, num_classes: int = 10, n_train: int = 100, n_test: int = 40, seed: int = 0) -> Path:
    """CIFAR-10 or CIFAR-100 pickle batches under ``root`` (torchvision's layout; their md5 sums will not match)."""
    rng = np.random.default_rng(seed)
    if num_classes == 10:
        folder, train_files, test_file = (
            root / "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "test_batch",
        )
        label_key, meta_file, meta = "labels", "batches.meta", {"label_names": [f"class{i}" for i in range(10)]}
    else:
        folder, train_files, test_file = root / "cifar-100-python", ["train"], "test"
        label_key, meta_file, meta = "fine_labels", "meta", {"fine_label_names": [f"class{i}" for i in range(100)]}
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, num_classes, size=n)
        images = class_images(labels, 32, 32, 3, seed=int(rng.integers(2**31))).transpose(0, 3, 1, 2).reshape(n, -1)
        return {"data": images, label_key: labels.tolist()}

    per_file = n_train // len(train_files)
    for name in train_files:
        (folder / name).write_bytes(pickle.dumps(batch(per_file)))
    (folder / test_file).write_bytes(pickle.dumps(batch(n_test)))
    (folder / meta_file).write_bytes(pickle.dumps(meta))
    return root


def write_image_folder(
    root: Path,
    splits: dict[str, int],
    classes: tuple[str, ...] = ("cat", "dog", "fox"),
    size: tuple[int, int] = (12, 10),
    mode: str = "RGB",
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """``root/<split>/<class>/<n>.png`` with ``splits[split]`` images per class; ``size`` is (height, width)."""
    for split, per_class in splits.items():
        labels = np.repeat(np.arange(len(classes)), per_class)
        images = class_images(labels, size[0], size[1], 3, seed)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).convert(mode).save(folder / f"{i}{suffix}")
    return root


def write_png_folder(
    root: Path, images: np.ndarray, labels: list[int], class_names: list[str], mode: str = "L"
) -> Path:
    """Grey uint8 ``images`` (N, H, W) as ``root/<class name>/<n>.png`` files in colour ``mode``."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).convert(mode).save(folder / f"{i}.png")
    return root
