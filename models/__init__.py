"""LightningModules: the shared :class:`ImageClassifier` base and the MLP, CNN, ResNet9 and Pretrained built on it."""

from models.classifier import ImageClassifier
from models.cnn import CNN
from models.mlp import MLP
from models.pretrained import Pretrained
from models.resnet import ResNet9

__all__ = ["CNN", "MLP", "ImageClassifier", "Pretrained", "ResNet9"]
