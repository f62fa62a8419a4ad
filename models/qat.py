"""Quantization-aware training (QAT) of a trained classifier, then int8 conversion, with torch.ao's FX graph mode.

torch.ao.quantization is deprecated on this torch in favour of torchao's PT2E flow
(``prepare_qat_pt2e``, ``convert_pt2e``). That flow was tried first: on this project's 2-core x86
CPU the CNN it converted to int8 took 1,377 ms per image run eagerly and 696 ms after a 217 s
``torch.compile``, against 0.64 ms for the float CNN (the machine was shared; the float figure
was taken at the same time), so its CPU latency could not be compared with anything. FX graph
mode runs real int8 kernels eagerly, and is what ``scripts/quantize.py --method static`` uses, so
QAT and static quantization go through the same quantizer and engine. Lightning 2.x has no QAT
callback: the fake-quantized network is fine-tuned as a small LightningModule by an ordinary Trainer.
"""

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.ao.quantization import get_default_qat_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

from models.classifier import ImageClassifier


class QuantizationAwareTraining(LightningModule):
    """Fine-tunes a trained classifier with fake-quantized weights and activations; ``int8()`` converts it.

    BatchNorm is folded into the convolutions and ReLU fused as for static quantization; the
    fine-tuning uses the classifier's loss and SGD with momentum 0.9 at a constant, small ``lr``:
    the weights only have to adapt to the rounding, not learn anew.

    Args:
        model: The trained float classifier (left unchanged: a traced copy is trained).
        lr: Learning rate of the fine-tuning.
    """

    def __init__(self, model: ImageClassifier, lr: float) -> None:
        super().__init__()
        qconfig = get_default_qat_qconfig_mapping(torch.backends.quantized.engine)
        self.network = prepare_qat_fx(model.train(), qconfig, (model.example_input_array,))
        self.criterion = model.criterion
        self.lr = lr

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.criterion(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def int8(self) -> nn.Module:
        """The fine-tuned network converted to int8 (eval mode, CPU)."""
        return convert_fx(self.network.eval().cpu())
