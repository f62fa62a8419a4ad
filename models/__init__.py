"""LightningModules: the shared :class:`ImageClassifier` base and the MLP, CNN, ResNet9, Airbench94 and Pretrained
built on it.

Also the worked examples of a custom activation, loss and optimizer; importing them here makes them
known to the CLI by class name (``--model.loss FocalLoss``, ``--model.optimizer MomentumSGD``).
"""

from models.activations import Swish
from models.airbench import Airbench94
from models.classifier import ImageClassifier
from models.cnn import CNN
from models.ema import EMAWeights
from models.losses import FocalLoss
from models.mlp import MLP
from models.optimizers import MomentumSGD
from models.pretrained import Pretrained
from models.resnet import ResNet9

__all__ = [
    "Airbench94",
    "CNN",
    "EMAWeights",
    "MLP",
    "FocalLoss",
    "ImageClassifier",
    "MomentumSGD",
    "Pretrained",
    "ResNet9",
    "Swish",
]
