"""Transfer learning: a torchvision or torch.hub network, pretrained weights, and a new classification head."""

from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import BackboneFinetuning
from torch import Tensor, nn
from torch.nn import functional

from datamodules.errors import first_line
from models.classifier import ImageClassifier


def load_network(name: str, weights: str | None, hub: str | None) -> nn.Module:
    """The network ``name`` from torchvision, or from the torch.hub repository ``hub``, with ``weights``.

    ``weights`` is a torchvision weight name (for a hub model: the entry point's ``weights`` argument),
    fetched into torch.hub's cache on first use, or the path of a state_dict file; None for random weights.
    """
    local = weights is not None and Path(weights).is_file()
    named = None if weights is None or local else weights
    try:
        if hub is None:
            network = torchvision.models.get_model(name, weights=named)
        else:
            source = "local" if Path(hub).is_dir() else "github"
            network = torch.hub.load(hub, name, source=source, **({} if named is None else {"weights": named}))
    except KeyError:  # torchvision's lookup of the weight name
        names = ", ".join(str(w) for w in torchvision.models.get_model_weights(name))
        problem = f"unknown weights {weights!r} for {name}: give DEFAULT or one of {names}"
    except (OSError, RuntimeError) as err:  # the download failed; torch.hub says RuntimeError when offline
        reason = first_line(err)
        what = f"the torch.hub model {hub}:{name}" if hub else f"the weights {weights}"
        problem = (
            f"cannot download {what} ({reason}): connect to the internet once (it is cached in {torch.hub.get_dir()})"
        )
    else:
        if local:
            network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return network
    # Raised outside the except blocks, so that this message is the one the command line shows.
    raise ValueError(
        f"{problem}, give a local weights file with --model.weights path/to/weights.pth, or train from scratch "
        "with --model.weights null"
    )


def split_head(network: nn.Module) -> tuple[nn.Module, int]:
    """``network`` without its last Linear layer (replaced by an identity), and that layer's input width."""
    linear = [name for name, module in network.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(network).__name__} has no Linear classifier layer to replace")
    features = network.get_submodule(linear[-1]).in_features
    network.set_submodule(linear[-1], nn.Identity())
    return network, features


class Pretrained(ImageClassifier):
    """A pretrained network (resnet18, mobilenet_v3_small, efficientnet_b0, convnext_tiny, ...) fine-tuned to the data.

    The network's last Linear layer is replaced by a new one for ``num_classes``; the rest is the
    ``backbone``. With ``unfreeze_at_epoch``, Lightning's ``BackboneFinetuning`` trains only the new
    head at first, then the whole network, the backbone at a lower learning rate that rises to the head's.
    Grey images are repeated to the three channels the networks take.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: (channels, height, width) of the input (from the datamodule).
        backbone: A torchvision classification model (``torchvision.models.list_models()``), or with ``hub``
            an entry point of that torch.hub repository.
        weights: The pretrained weights: a torchvision weight name such as ResNet18_Weights.IMAGENET1K_V1 or
            DEFAULT (the best for the backbone), downloaded into torch.hub's cache on first use; or the path
            of a state_dict file of the backbone (with its original head); or null to train from scratch.
        hub: A torch.hub repository ("owner/repo[:ref]" on GitHub, or a local folder with a hubconf.py) to
            take the backbone from instead of torchvision.
        input_size: Resize the inputs to this square size on the device (pretrained ImageNet networks
            work best at 160-224); default: unchanged.
        unfreeze_at_epoch: Train only the new head for this many epochs, then the whole network; 0 trains
            the whole network from the start.
        backbone_lr_ratio: The backbone's learning rate when it is unfrozen, as a fraction of the head's.
        scheduler: Learning-rate schedule of the head, as in :class:`ImageClassifier` (BackboneFinetuning
            sets the backbone's); onecycle and plateau cannot take in the parameters it adds during training.
        **kwargs: Loss, optimizer and schedule options of :class:`ImageClassifier`.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        backbone: str = "resnet18",
        weights: str | None = "DEFAULT",
        hub: str | None = None,
        input_size: int | None = None,
        unfreeze_at_epoch: int = 1,
        backbone_lr_ratio: float = 0.1,
        scheduler: Literal["none", "step", "cosine"] = "cosine",
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, input_shape=input_shape, scheduler=scheduler, **kwargs)
        if input_shape[0] not in (1, 3):
            raise ValueError(f"pretrained networks take grey or RGB images, got {input_shape[0]} channels")
        self.backbone, features = split_head(load_network(backbone, weights, hub))
        self.head = nn.Linear(features, num_classes)
        self.input_size = input_size

    def forward(self, x: Tensor) -> Tensor:
        if self.input_size is not None:
            x = functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        return self.head(self.backbone(x.expand(-1, 3, -1, -1)))

    def configure_callbacks(self) -> list[Callback]:
        callbacks = super().configure_callbacks()  # the weight average, when asked for
        if not self.hparams.unfreeze_at_epoch:
            return callbacks
        return [
            *callbacks,
            BackboneFinetuning(
                unfreeze_backbone_at_epoch=self.hparams.unfreeze_at_epoch,
                backbone_initial_ratio_lr=self.hparams.backbone_lr_ratio,
            ),
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        config = super().configure_optimizers()
        # Only the parameters that train from the start (the head, while the backbone is frozen):
        # BackboneFinetuning adds the backbone's as a group of their own when it unfreezes them.
        for group in config["optimizer"].param_groups:
            group["params"] = [p for p in group["params"] if p.requires_grad]
        return config

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The checkpoint holds every weight: loading it must not fetch the pretrained ones again (offline, say).
        checkpoint["hyper_parameters"]["weights"] = None
