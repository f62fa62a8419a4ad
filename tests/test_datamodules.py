"""Each datamodule reads fake files in its real on-disk format: shapes, dtypes, normalization, splits."""

import os
from collections import Counter
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from datamodules import CIFAR10, CIFAR100, MNIST, ClassificationDataModule, DataError, Digits, FashionMNIST, ImageFolder
from datamodules.augment import random_crop_flip
from datamodules.base import split_indices
from datamodules.batches import ShardedBatchSampler, TensorImages
from tests.fake_data import write_cifar, write_image_folder, write_mnist


def image_set(part: torch.utils.data.Dataset) -> set[bytes]:
    """The images of a dataset part, as raw bytes: fake images are random, so each one is unique."""
    return {part[i][0].numpy().tobytes() for i in range(len(part))}


def first_batch(dm: ClassificationDataModule, loader: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch of a loader, preprocessed as on the device (not augmented)."""
    x, y = next(iter(getattr(dm, f"{loader}_dataloader")()))
    assert x.dtype == torch.uint8, "batches travel as uint8 and are normalized on the device"
    return dm.preprocess(x, train=False), y


def test_split_indices_is_seeded_disjoint_and_complete() -> None:
    rest, val, test = split_indices(100, [0.1, 25], seed=3)
    assert (len(rest), len(val), len(test)) == (65, 10, 25)
    assert set(rest) | set(val) | set(test) == set(range(100))
    assert not (set(rest) & set(val) or set(rest) & set(test) or set(val) & set(test))
    assert split_indices(100, [0.1, 25], seed=3) == [rest, val, test]
    assert split_indices(100, [0.1, 25], seed=4)[1] != val
    assert val != sorted(val), "parts keep the shuffled order, so class-ordered data is mixed in each batch"


def test_split_indices_with_labels_is_stratified_where_the_parts_can_hold_every_class() -> None:
    labels = torch.arange(3).repeat_interleave(10)  # stored class by class, as image folders are
    rest, val, test = split_indices(30, [3, 6], seed=0, labels=labels)
    assert sorted(rest + val + test) == list(range(30))
    assert [Counter(labels[part].tolist()) for part in (val, test)] == [
        Counter({0: 1, 1: 1, 2: 1}),
        Counter([0, 1, 2] * 2),
    ]
    assert split_indices(30, [3, 6], seed=0, labels=labels) == [rest, val, test]
    assert len(split_indices(30, [2], seed=0, labels=labels)[1]) == 2  # too small for three classes: a plain split


def test_image_folder_holds_out_a_stratified_test_part(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"train": 10})
    dm = ImageFolder(root=str(root), test_size=6, val_size=3, num_workers=0)
    dm.setup("fit")
    assert Counter(dm.test_set.labels.tolist()) == Counter([0, 1, 2] * 2)
    assert Counter(dm.val_set.labels.tolist()) == Counter([0, 1, 2])


@pytest.mark.parametrize("sizes", [[100], [0.001], [60, 40]])
def test_split_indices_rejects_impossible_splits(sizes: list[float]) -> None:
    with pytest.raises(DataError, match="cannot split 100 samples"):
        split_indices(100, sizes, seed=0)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize(
    ("module", "folder", "mean", "std"),
    [(MNIST, "MNIST", 0.1307, 0.3081), (FashionMNIST, "FashionMNIST", 0.2860, 0.3530)],
)
def test_mnist_family_reads_idx_files(
    tmp_path: Path, module: type, folder: str, mean: float, std: float, in_memory: bool
) -> None:
    write_mnist(tmp_path, folder, n_train=300, n_test=100)
    options = {"data_dir": str(tmp_path), "download": False, "val_size": 0.2, "in_memory": in_memory}
    dm = module(**options, num_workers=0, batch_size=16)
    assert (dm.num_classes, dm.input_shape, len(dm.class_names)) == (10, (1, 28, 28), 10)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert isinstance(dm.train_set, TensorImages) == in_memory
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (240, 60, 100)
    train, val = image_set(dm.train_set), image_set(dm.val_set)
    assert not train & val and len(train | val) == 300
    x, y = first_batch(dm, "train")
    assert x.shape == (16, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    x, _ = first_batch(dm, "test")
    pixels = module.dataset_class(str(tmp_path), train=False).data
    assert torch.allclose(x[0, 0], (pixels[0].float() / 255 - mean) / std, atol=1e-5)
    again = module(**options)
    again.setup("fit")
    assert image_set(again.val_set) == val
    other_seed = module(**options, seed=7)
    other_seed.setup("fit")
    assert image_set(other_seed.val_set) != val


def test_in_memory_and_per_image_paths_give_the_same_batches(tmp_path: Path) -> None:
    write_mnist(tmp_path, n_train=100, n_test=40)
    batches = []
    for in_memory in (True, False):
        dm = MNIST(data_dir=str(tmp_path), download=False, in_memory=in_memory, num_workers=0, batch_size=32)
        dm.setup("fit")
        batches.append([batch for batch in dm.train_dataloader()])
    for (x1, y1), (x2, y2) in zip(*batches, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_in_memory_by_default_unless_the_images_exceed_a_quarter_of_free_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_mnist(tmp_path, n_train=100, n_test=40)
    dm = MNIST(data_dir=str(tmp_path), download=False)
    dm.setup("fit")
    assert isinstance(dm.train_set, TensorImages)
    monkeypatch.setattr("datamodules.base.available_memory", lambda: 4 * 100 * 28 * 28 - 1)
    dm.setup("fit")
    assert not isinstance(dm.train_set, TensorImages)


def test_missing_dataset_without_download_says_where_and_what_to_do(tmp_path: Path) -> None:
    dm = MNIST(data_dir=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message and "--data Digits" in message


def test_failed_download_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def offline(self: datasets.MNIST) -> None:
        os.makedirs(self.raw_folder, exist_ok=True)  # as torchvision does, before it tries its mirrors
        print("Downloading https://example.invalid/train-images-idx3-ubyte.gz")
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    (tmp_path / "data").mkdir()
    for data_dir in (tmp_path / "data", tmp_path / "new"):
        with pytest.raises(DataError) as error:
            MNIST(data_dir=str(data_dir)).prepare_data()
        message = str(error.value)
        assert "\n" not in message and "the download failed" in message and "name resolution" in message
        assert "example.invalid" not in capsys.readouterr().out
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "data"]  # nothing of the failed downloads is left


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize(("module", "num_classes"), [(CIFAR10, 10), (CIFAR100, 100)])
def test_cifar_reads_pickle_batches(cifar_root: Path, module: type, num_classes: int, in_memory: bool) -> None:
    write_cifar(cifar_root, num_classes, n_train=100, n_test=40)
    dm = module(data_dir=str(cifar_root), download=False, val_size=20, num_workers=0, batch_size=8, in_memory=in_memory)
    assert (dm.num_classes, dm.input_shape) == (num_classes, (3, 32, 32))
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert dm.class_names == [f"class{i}" for i in range(num_classes)]
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 40)
    assert not image_set(dm.train_set) & image_set(dm.val_set)
    x, y = first_batch(dm, "test")
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    pixels = torch.from_numpy(module.dataset_class(str(cifar_root), train=False).data[0]).permute(2, 0, 1) / 255
    expected = (pixels - torch.tensor(module.mean)[:, None, None]) / torch.tensor(module.std)[:, None, None]
    assert torch.allclose(x[0], expected, atol=1e-5)


def test_cifar_augmentation_applies_to_training_batches_only_and_can_be_switched_off(cifar_root: Path) -> None:
    write_cifar(cifar_root, 10, n_train=100, n_test=40)
    torch.manual_seed(0)
    for augment in ("crop_flip", "none"):
        dm = CIFAR10(
            data_dir=str(cifar_root), download=False, val_size=20, **({} if augment != "none" else {"augment": augment})
        )
        dm.setup("fit")
        x = dm.train_set.images[:16]
        assert torch.equal(dm.preprocess(x, train=False), dm.preprocess(x, train=False))
        assert torch.equal(dm.preprocess(x, train=True), dm.preprocess(x, train=False)) == (augment == "none")


def test_batch_crop_and_flip_match_the_per_image_augmentation() -> None:
    torch.manual_seed(0)
    images = torch.randint(1, 256, (2000, 3, 8, 6), dtype=torch.uint8)
    out = random_crop_flip(images, padding=2, padding_mode="zeros")
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    seen = Counter()
    for image, source in zip(out, padded, strict=True):
        crops = {
            (top, left, flip): source[:, top : top + 8, left : left + 6].flip(-1)
            if flip
            else source[:, top : top + 8, left : left + 6]
            for top in range(5)
            for left in range(5)
            for flip in (False, True)
        }
        matches = [key for key, crop in crops.items() if torch.equal(image, crop)]
        assert matches, "every output image is a crop of its own zero-padded input, flipped or not"
        seen[matches[0]] += 1
    assert len(seen) == 50 and min(seen.values()) > 10, "all 5 x 5 offsets, flipped and not, occur evenly"


def test_digits_needs_no_download_and_splits_three_ways() -> None:
    dm = Digits(val_size=0.1, test_size=0.2, batch_size=64)
    assert (dm.num_classes, dm.input_shape, dm.class_names[:2]) == (10, (1, 8, 8), ["0", "1"])
    dm.setup("fit")
    sizes = (len(dm.train_set), len(dm.val_set), len(dm.test_set))
    assert sizes == (1258, 180, 359) and sum(sizes) == 1797
    x, y = first_batch(dm, "train")
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    train_x = dm.preprocess(dm.train_set.images, train=False)
    assert abs(train_x.mean().item()) < 1e-4 and abs(train_x.std().item() - 1) < 1e-3


@pytest.mark.parametrize(
    ("n", "batch_size", "world_size"), [(10, 3, 1), (11, 3, 2), (7, 3, 2), (1000, 64, 3), (5, 2, 5)]
)
def test_sharded_batches_cover_every_sample_exactly_once_with_equal_steps_per_rank(
    n: int, batch_size: int, world_size: int
) -> None:
    for shuffle in (False, True):
        ranks = [
            list(ShardedBatchSampler(n, batch_size, shuffle, seed=1, rank=r, world_size=world_size))
            for r in range(world_size)
        ]
        assert len({len(batches) for batches in ranks}) == 1, "every rank takes the same number of steps"
        sizes = [len(batch) for batches in ranks for batch in batches]
        assert min(sizes) >= 1 and max(sizes) <= batch_size
        if world_size == 1:
            assert sizes[:-1] == [batch_size] * (len(sizes) - 1), "one process: full batches, then the rest"
        assert sorted(i for batches in ranks for batch in batches for i in batch) == list(range(n))


def test_sharded_batches_reshuffle_every_epoch_from_the_seed() -> None:
    def epoch(epoch: int, seed: int = 1) -> list[list[int]]:
        sampler = ShardedBatchSampler(100, 10, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert epoch(0) == epoch(0) and epoch(0) != epoch(1) and epoch(0, seed=2) != epoch(0)
    assert [i for batch in list(ShardedBatchSampler(10, 4, shuffle=False)) for i in batch] == list(range(10))
    with pytest.raises(DataError, match="cannot share 1 sample"):
        ShardedBatchSampler(1, 4, shuffle=False, world_size=2)
    with pytest.raises(DataError, match="raise the batch size"):
        ShardedBatchSampler(3, 1, shuffle=False, world_size=2)


@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize(("mode", "suffix", "channels"), [("RGB", ".png", 3), ("L", ".png", 1), ("RGB", ".jpg", 3)])
def test_image_folder_infers_mode_size_and_normalization(
    tmp_path: Path, mode: str, suffix: str, channels: int, in_memory: bool
) -> None:
    root = write_image_folder(tmp_path, {"train": 10}, size=(12, 10), mode=mode, suffix=suffix)
    dm = ImageFolder(
        root=str(root), val_size=0.2, test_size=6, num_workers=0, batch_size=4, stats_images=1000, in_memory=in_memory
    )
    assert (dm.num_classes, dm.class_names, dm.input_shape) == (3, ["cat", "dog", "fox"], (channels, 12, 10))
    dm.prepare_data()
    dm.setup("fit")
    assert isinstance(dm.train_set, TensorImages) == in_memory
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (18, 6, 6)
    parts = [image_set(dm.train_set), image_set(dm.val_set), image_set(dm.test_set)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    train = dm.preprocess(torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))]), train=False)
    assert train.shape == (18, channels, 12, 10) and train.dtype == torch.float32
    per_channel = train.transpose(0, 1).flatten(1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(per_channel.std(1), torch.ones(channels), atol=1e-2)


def test_image_folder_uses_val_and_test_folders_with_train_class_numbers(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"train": 4, "val": 2, "test": 3})
    for stray in (root / "val" / "cat").iterdir():  # val/ lacks a class: the others keep their numbers
        stray.unlink()
    (root / "val" / "cat").rmdir()
    dm = ImageFolder(root=str(root), image_size=16, grayscale=True, mean=[0.5], std=[0.25], augment="crop_flip")
    assert dm.input_shape == (1, 16, 16)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 4, 9)
    assert sorted(set(dm.val_set.labels.tolist())) == [1, 2]
    first = sorted((root / "test" / "cat").iterdir())[0]
    pixels = np.asarray(Image.open(first).convert("L").resize((16, 16), resample=2), dtype=np.float32)
    x = dm.preprocess(dm.test_set.images[:1], train=False)
    assert torch.allclose(x[0, 0], (torch.from_numpy(pixels) / 255 - 0.5) / 0.25, atol=0.1)


def test_image_folder_caches_decoded_images_until_the_files_change(tmp_path: Path, capsys) -> None:
    root = write_image_folder(tmp_path, {"train": 6, "test": 2})
    options = {"root": str(root), "num_workers": 0, "in_memory": True}
    ImageFolder(**options).prepare_data()
    assert capsys.readouterr().out.count("Decoding") == 2
    cached = sorted(path.name for path in (root / ".tensor_cache").iterdir())
    assert [name.split("-")[:3] for name in cached] == [["test", "12x10", "RGB"], ["train", "12x10", "RGB"]]
    dm = ImageFolder(**options)
    dm.prepare_data()
    dm.setup("fit")
    assert "Decoding" not in capsys.readouterr().out and len(dm.train_set) + len(dm.val_set) == 18
    Image.new("RGB", (10, 12)).save(root / "train" / "cat" / "new.png")
    dm = ImageFolder(**options)
    dm.setup("fit")
    assert "Decoding the 19 images" in capsys.readouterr().out and len(dm.train_set) + len(dm.val_set) == 19


def test_image_folder_bad_layouts_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no image folder at .*train: put your images in"):
        ImageFolder(root=str(tmp_path / "missing"))
    write_image_folder(tmp_path / "one", {"train": 2}, classes=("only",))
    with pytest.raises(DataError, match="at least two class folders"):
        ImageFolder(root=str(tmp_path / "one"))
    root = write_image_folder(tmp_path / "empty", {"train": 2})
    with pytest.raises(ValueError, match="3 value"):
        ImageFolder(root=str(root), mean=[0.5], std=[0.5])
    (root / "train" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra"):
        ImageFolder(root=str(root))
