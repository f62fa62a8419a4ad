"""LightningModules: the shared :class:`ImageClassifier` base and the MLP, CNN and ResNet9 built on it."""

from models.classifier import ImageClassifier
from models.cnn import CNN
from models.mlp import MLP
from models.resnet import ResNet9

__all__ = ["CNN", "MLP", "ImageClassifier", "ResNet9"]
