"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 through torchvision, downloaded on first use."""

import contextlib
import io
import shutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Subset
from torchvision import datasets
from torchvision.datasets import VisionDataset

from datamodules.augment import Preset
from datamodules.base import ClassificationDataModule
from datamodules.batches import TensorImages
from datamodules.errors import DataError, first_line
from datamodules.transforms import to_uint8_tensor, with_transform


class TorchvisionDataModule(ClassificationDataModule):
    """A torchvision dataset: official train split (less a seeded validation part), official test split.

    Args:
        data_dir: Folder holding the dataset (torchvision's layout); it is downloaded there if missing.
        download: Download the dataset when it is missing from ``data_dir``.
        **kwargs: Loader and split options of :class:`ClassificationDataModule`.
    """

    dataset_class: ClassVar[type[VisionDataset]]
    files: ClassVar[str]  # where torchvision looks for the files, under data_dir
    mean: ClassVar[tuple[float, ...]]
    std: ClassVar[tuple[float, ...]]

    def __init__(self, data_dir: str = "./data", download: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.download = download

    @property
    def class_names(self) -> list[str]:
        """Class names; CIFAR's are read from the dataset's files, so they need the data in place."""
        return list(getattr(self.dataset_class, "classes", None) or self._open(train=False).classes)

    def _missing(self, why: str) -> DataError:
        name = type(self).__name__
        return DataError(
            f"{name} not found in {self.data_dir / self.files} and {why}: place the {name} files there "
            "(or point --data.data_dir at their parent folder), "
            "or train offline on the bundled data with --data Digits"
        )

    def _open(self, train: bool, **kwargs: Any) -> VisionDataset:
        try:
            return self.dataset_class(str(self.data_dir), train=train, **kwargs)
        # torchvision tells a missing or damaged file in many ways: RuntimeError, AssertionError, pickle errors...
        except Exception as err:
            if not self._has_files():
                raise self._missing("it is not readable there") from err
            reason = first_line(err)
            raise DataError(
                f"the {type(self).__name__} files in {self.data_dir / self.files} are incomplete or damaged "
                f"({reason}): delete them to download them again, or put intact copies there"
            ) from err

    def _has_files(self) -> bool:
        folder = self.data_dir / self.files
        return folder.is_dir() and any(folder.iterdir())

    def _present(self) -> bool:
        try:
            self._open(train=True), self._open(train=False)
        except DataError:
            return False
        return True

    def prepare_data(self) -> None:
        """Download the dataset if it is not in ``data_dir`` yet."""
        if self._present():
            return
        if not self.download:
            if self._has_files():
                self._open(train=True), self._open(train=False)  # raises: which files are damaged, and why
            raise self._missing("--data.download is off")
        print(f"Downloading {type(self).__name__} into {self.data_dir} ...", flush=True)
        existed = self.data_dir.is_dir()
        before = set(self.data_dir.iterdir()) if existed else set()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints every mirror it tries
                for train in (True, False):
                    self.dataset_class(str(self.data_dir), train=train, download=True)
        except Exception as err:
            # What the failed download created goes (empty folders, parts of files); what was there stays.
            for path in [self.data_dir] if not existed else set(self.data_dir.iterdir()) - before:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            reason = first_line(err)
            raise self._missing(f"the download failed ({reason})") from err

    def _tensors(self, dataset: VisionDataset) -> TensorImages:
        """The whole dataset as uint8 tensors: torchvision already holds MNIST and CIFAR as arrays."""
        images = torch.as_tensor(dataset.data)
        images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)  # CIFAR is N, H, W, C
        return TensorImages(images.contiguous(), torch.as_tensor(dataset.targets))

    def setup(self, stage: str) -> None:
        """Split the official train set into train and validation parts; open the official test set."""
        if stage in ("fit", "validate"):
            train = self._open(train=True)
            labels = self.with_label_noise(torch.as_tensor(train.targets), list(range(len(train))))
            if self.label_noise:
                train.targets = labels if isinstance(train.targets, torch.Tensor) else labels.tolist()
            train_idx, val_idx = self.split_train_val(labels)
            self.image_ids.update(train=train_idx, val=val_idx)  # indices in the official train set
            if self.keep_in_memory(len(train)):
                train = self._tensors(train)
                self.train_set, self.val_set = train.subset(train_idx), train.subset(val_idx)
            else:
                train = with_transform(train, to_uint8_tensor())
                self.train_set, self.val_set = Subset(train, train_idx), Subset(train, val_idx)
        if stage in ("test", "predict"):
            test = self._open(train=False)
            self.image_ids["test"] = list(range(len(test)))
            self.test_set = (
                self._tensors(test) if self.keep_in_memory(len(test)) else with_transform(test, to_uint8_tensor())
            )


class MNIST(TorchvisionDataModule):
    """MNIST handwritten digits: 60,000 train and 10,000 test grey 28x28 images, 10 classes."""

    dataset_class = datasets.MNIST
    files = "MNIST/raw"
    flips_allowed = False
    mean, std = (0.1307,), (0.3081,)
    input_shape, num_classes = (1, 28, 28), 10


class FashionMNIST(TorchvisionDataModule):
    """Fashion-MNIST clothing images: 60,000 train and 10,000 test grey 28x28 images, 10 classes."""

    dataset_class = datasets.FashionMNIST
    files = "FashionMNIST/raw"
    mean, std = (0.2860,), (0.3530,)
    input_shape, num_classes = (1, 28, 28), 10


class _CIFAR(TorchvisionDataModule):
    """CIFAR colour images, by default with the standard augmentation.

    Args:
        augment: Augmentation preset (see :class:`ClassificationDataModule`); default crop_flip:
            random crop with 4-pixel zero padding and horizontal flip of the training images.
        **kwargs: Options of :class:`TorchvisionDataModule`.
    """

    input_shape = (3, 32, 32)

    def __init__(self, augment: Preset = "crop_flip", **kwargs: Any) -> None:
        super().__init__(augment=augment, **kwargs)


class CIFAR10(_CIFAR):
    """CIFAR-10: 50,000 train and 10,000 test colour 32x32 images, 10 classes."""

    dataset_class = datasets.CIFAR10
    files, num_classes = "cifar-10-batches-py", 10
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class CIFAR100(_CIFAR):
    """CIFAR-100: 50,000 train and 10,000 test colour 32x32 images, 100 classes."""

    dataset_class = datasets.CIFAR100
    files, num_classes = "cifar-100-python", 100
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
