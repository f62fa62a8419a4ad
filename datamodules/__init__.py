"""LightningDataModules: torchvision datasets, scikit-learn's bundled digits, your own image folders and files."""

from datamodules.base import ClassificationDataModule
from datamodules.digits import Digits
from datamodules.errors import DataError
from datamodules.image_files import ImageFiles
from datamodules.image_folder import ImageFolder
from datamodules.torchvision_sets import CIFAR10, CIFAR100, MNIST, FashionMNIST, TorchvisionDataModule

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "MNIST",
    "ClassificationDataModule",
    "DataError",
    "Digits",
    "FashionMNIST",
    "ImageFiles",
    "ImageFolder",
    "TorchvisionDataModule",
]
