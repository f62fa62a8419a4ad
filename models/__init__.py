"""LightningModules: the shared :class:`ImageClassifier` base and the MLP and CNN built on it."""

from models.classifier import ImageClassifier
from models.cnn import CNN
from models.mlp import MLP

__all__ = ["CNN", "MLP", "ImageClassifier"]
