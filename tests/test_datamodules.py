"""Each datamodule reads fake files in its real on-disk format: shapes, dtypes, normalization, splits."""

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from torchvision import datasets

from datamodules import CIFAR10, CIFAR100, MNIST, DataError, Digits, FashionMNIST, ImageFolder
from datamodules.base import split_indices
from tests.fake_data import write_cifar, write_image_folder, write_mnist


def indices(subset: torch.utils.data.Subset) -> set[int]:
    return set(subset.indices)


def test_split_indices_is_seeded_disjoint_and_complete() -> None:
    rest, val, test = split_indices(100, [0.1, 25], seed=3)
    assert (len(rest), len(val), len(test)) == (65, 10, 25)
    assert set(rest) | set(val) | set(test) == set(range(100))
    assert not (set(rest) & set(val) or set(rest) & set(test) or set(val) & set(test))
    assert split_indices(100, [0.1, 25], seed=3) == [rest, val, test]
    assert split_indices(100, [0.1, 25], seed=4)[1] != val
    assert val != sorted(val), "parts keep the shuffled order, so class-ordered data is mixed in each batch"


@pytest.mark.parametrize("sizes", [[100], [0.001], [60, 40]])
def test_split_indices_rejects_impossible_splits(sizes: list[float]) -> None:
    with pytest.raises(DataError, match="cannot split 100 samples"):
        split_indices(100, sizes, seed=0)


@pytest.mark.parametrize(
    ("module", "folder", "mean", "std"),
    [(MNIST, "MNIST", 0.1307, 0.3081), (FashionMNIST, "FashionMNIST", 0.2860, 0.3530)],
)
def test_mnist_family_reads_idx_files(tmp_path: Path, module: type, folder: str, mean: float, std: float) -> None:
    write_mnist(tmp_path, folder, n_train=300, n_test=100)
    dm = module(data_dir=str(tmp_path), download=False, val_size=0.2, num_workers=0, batch_size=16)
    assert (dm.num_classes, dm.input_shape, len(dm.class_names)) == (10, (1, 28, 28), 10)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (240, 60, 100)
    assert not indices(dm.train_set) & indices(dm.val_set)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    pixels = dm.test_set.data[0].float() / 255
    assert torch.allclose(dm.test_set[0][0][0], (pixels - mean) / std, atol=1e-5)
    again = module(data_dir=str(tmp_path), download=False, val_size=0.2)
    again.setup("fit")
    assert indices(again.val_set) == indices(dm.val_set)
    other_seed = module(data_dir=str(tmp_path), download=False, val_size=0.2, seed=7)
    other_seed.setup("fit")
    assert indices(other_seed.val_set) != indices(dm.val_set)


def test_missing_dataset_without_download_says_where_and_what_to_do(tmp_path: Path) -> None:
    dm = MNIST(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message and "--data Digits" in message


def test_failed_download_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def offline(self: datasets.MNIST) -> None:
        print("Downloading https://example.invalid/train-images-idx3-ubyte.gz")  # as torchvision does
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    with pytest.raises(DataError) as error:
        MNIST(data_dir=str(tmp_path)).prepare_data()
    message = str(error.value)
    assert "\n" not in message and "the download failed" in message and "name resolution" in message
    assert "example.invalid" not in capsys.readouterr().out


@pytest.mark.parametrize(("module", "num_classes"), [(CIFAR10, 10), (CIFAR100, 100)])
def test_cifar_reads_pickle_batches(cifar_root: Path, module: type, num_classes: int) -> None:
    write_cifar(cifar_root, num_classes, n_train=100, n_test=40)
    dm = module(data_dir=str(cifar_root), download=False, val_size=20, num_workers=0, batch_size=8)
    assert (dm.num_classes, dm.input_shape) == (num_classes, (3, 32, 32))
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert dm.class_names == [f"class{i}" for i in range(num_classes)]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 40)
    assert not indices(dm.train_set) & indices(dm.val_set)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    pixels = torch.from_numpy(dm.test_set.data[0]).permute(2, 0, 1).float() / 255
    expected = (pixels - torch.tensor(module.mean)[:, None, None]) / torch.tensor(module.std)[:, None, None]
    assert torch.allclose(dm.test_set[0][0], expected, atol=1e-5)


def test_cifar_augmentation_applies_to_training_images_only_and_can_be_switched_off(cifar_root: Path) -> None:
    write_cifar(cifar_root, 10, n_train=100, n_test=40)
    torch.manual_seed(0)
    augmented = CIFAR10(data_dir=str(cifar_root), download=False, val_size=20)
    augmented.setup("fit")
    assert any(not torch.equal(augmented.train_set[0][0], augmented.train_set[0][0]) for _ in range(10))
    assert torch.equal(augmented.val_set[0][0], augmented.val_set[0][0])
    plain = CIFAR10(data_dir=str(cifar_root), download=False, val_size=20, augment=False)
    plain.setup("fit")
    assert all(torch.equal(plain.train_set[0][0], plain.train_set[0][0]) for _ in range(10))


def test_digits_needs_no_download_and_splits_three_ways() -> None:
    dm = Digits(val_size=0.1, test_size=0.2, batch_size=64)
    assert (dm.num_classes, dm.input_shape, dm.class_names[:2]) == (10, (1, 8, 8), ["0", "1"])
    dm.setup("fit")
    sizes = (len(dm.train_set), len(dm.val_set), len(dm.test_set))
    assert sizes == (1258, 180, 359) and sum(sizes) == 1797
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    train_x = dm.train_set.tensors[0]
    assert abs(train_x.mean().item()) < 1e-4 and abs(train_x.std().item() - 1) < 1e-3


@pytest.mark.parametrize(("mode", "suffix", "channels"), [("RGB", ".png", 3), ("L", ".png", 1), ("RGB", ".jpg", 3)])
def test_image_folder_infers_mode_size_and_normalization(tmp_path: Path, mode: str, suffix: str, channels: int) -> None:
    root = write_image_folder(tmp_path, {"train": 10}, size=(12, 10), mode=mode, suffix=suffix)
    dm = ImageFolder(root=str(root), val_size=0.2, test_size=6, num_workers=0, batch_size=4, stats_images=1000)
    assert (dm.num_classes, dm.class_names, dm.input_shape) == (3, ["cat", "dog", "fox"], (channels, 12, 10))
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 6, 6)
    parts = [indices(dm.train_set), indices(dm.val_set), indices(dm.test_set)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    train = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))])
    assert train.shape == (18, channels, 12, 10) and train.dtype == torch.float32
    per_channel = train.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(per_channel.std(1), torch.ones(channels), atol=1e-2)


def test_image_folder_uses_val_and_test_folders_with_train_class_numbers(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"train": 4, "val": 2, "test": 3})
    for stray in (root / "val" / "cat").iterdir():  # val/ lacks a class: the others keep their numbers
        stray.unlink()
    (root / "val" / "cat").rmdir()
    dm = ImageFolder(root=str(root), image_size=16, grayscale=True, mean=[0.5], std=[0.25], augment=True)
    assert dm.input_shape == (1, 16, 16)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 4, 9)
    assert sorted({label for _, label in dm.val_set.samples}) == [1, 2]
    assert dm.val_set[0][0].shape == (1, 16, 16)
    pixels = np.asarray(dm.test_set.loader(dm.test_set.samples[0][0]).resize((16, 16), resample=2), dtype=np.float32)
    assert torch.allclose(dm.test_set[0][0][0], (torch.from_numpy(pixels) / 255 - 0.5) / 0.25, atol=0.1)


def test_image_folder_bad_layouts_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no image folder at .*train: put your images in"):
        ImageFolder(root=str(tmp_path / "missing"))
    write_image_folder(tmp_path / "one", {"train": 2}, classes=("only",))
    with pytest.raises(DataError, match="at least two class folders"):
        ImageFolder(root=str(tmp_path / "one"))
    root = write_image_folder(tmp_path / "empty", {"train": 2})
    (root / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra"):
        ImageFolder(root=str(root)).setup("fit")
    with pytest.raises(ValueError, match="3 value"):
        ImageFolder(root=str(root), mean=[0.5], std=[0.5])
