"""Airbench94: Keller Jordan's CIFAR-10 speed-record network and its optimizer, in one place.

The recipe of "94% on CIFAR-10 in 3.29 seconds on a single GPU" (Jordan, arXiv 2404.00498; public
repository cifar10-airbench, legacy/airbench94.py: 94.01% mean over 1,000 runs in 3.83 s on an A100),
written anew for this project's ImageClassifier. Its data side (all 50,000 training images, translate
by 2 pixels with reflect padding, alternating flip) is set in configs/cifar10_airbench.yaml.

What differs from the published code, and why:
- The loss is the mean over the batch, not the sum; the learning rate is scaled by the batch size to
  match, so every step is the same as the published one (see ``configure_optimizers``).
- The whitening bias is frozen after ``whiten_bias_epochs`` by a zero learning rate rather than by
  ``requires_grad = False``, which DDP cannot follow once it has wrapped the model.
- The lookahead average starts from the whitened weights, not from the random ones the whitening replaces.
- Global max pooling instead of ``MaxPool2d(3)``: the same on 32x32 (and 28x28) inputs, whose last
  map is 3x3, and valid for any input of at least 9x9.
"""

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from datamodules.transforms import normalize
from models.classifier import ClassWeightsName, ImageClassifier
from models.tta import TTAName

WHITEN_KERNEL = 2  # the whitening convolution's patches are 2x2 pixels


def whitening_weight(images: Tensor, eps: float, kernel_size: int = WHITEN_KERNEL) -> Tensor:
    """The weights of a convolution that whitens the ``kernel_size`` patches of ``images``, and their negation.

    With ``Σ`` the second-moment matrix of the patches (as in airbench: not centred) and ``λ_i, v_i``
    its eigenvalues and unit eigenvectors, largest first, filter ``i`` is ``v_i / sqrt(λ_i + eps)``, so
    the filters' outputs are uncorrelated with variances ``λ_i / (λ_i + eps)`` (about 1 but for the
    weakest directions, which ``eps`` keeps from being amplified). The negated copies let the GELU
    after the layer pass both signs. Returns a tensor (2 * C * k * k, C, k, k).
    """
    channels = images.shape[1]
    size = channels * kernel_size**2
    moment = torch.zeros(size, size, dtype=torch.float64)
    count = 0
    for chunk in images.split(1000):  # about 50 MB of patches at a time for CIFAR
        patches = F.unfold(chunk.double(), kernel_size).transpose(1, 2).reshape(-1, size)
        moment += patches.T @ patches
        count += len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(moment / count)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors / torch.sqrt(eigenvalues + eps)).T.reshape(size, channels, kernel_size, kernel_size)
    return torch.cat([filters, -filters]).float()


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution without bias whose first ``in_channels`` filters start as the identity (dirac)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding="same", bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


def batch_norm(channels: int, momentum: float, eps: float) -> nn.BatchNorm2d:
    """BatchNorm with its scale frozen at 1 (only the bias trains); ``momentum`` in airbench's convention.

    Airbench's momentum is the weight of the old running statistics (0.6); PyTorch's is that of the new (0.4).
    """
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=1 - momentum)
    norm.weight.requires_grad_(False)
    return norm


def conv_group(in_channels: int, out_channels: int, momentum: float, eps: float) -> nn.Sequential:
    """conv3x3 → max pool 2 → BatchNorm → GELU → conv3x3 → BatchNorm → GELU."""
    return nn.Sequential(
        conv3x3(in_channels, out_channels),
        nn.MaxPool2d(2),
        batch_norm(out_channels, momentum, eps),
        nn.GELU(),
        conv3x3(out_channels, out_channels),
        batch_norm(out_channels, momentum, eps),
        nn.GELU(),
    )


class Airbench94(ImageClassifier):
    """Airbench94's network, Nesterov SGD in decoupled units, warm-up then linear decay, and lookahead.

    Network: a frozen 2x2 whitening convolution (``whitening_weight`` of the first
    ``whiten_images`` training images, set when training starts) with a bias that trains for the
    first ``whiten_bias_epochs`` epochs; GELU; three conv groups of ``widths`` channels; global max
    pooling; a linear layer without bias; the logits times ``logit_scale``.

    Optimizer: SGD with Nesterov ``momentum``. ``lr`` and ``weight_decay`` are per 1,024 examples
    and decoupled, as airbench states them: the step size does not change with the momentum, and
    the decay per step does not change with the learning rate. BatchNorm biases train at
    ``bias_scaler`` times the learning rate, with the same decay. The learning-rate factor rises
    linearly from ``start_factor`` to 1 over the first ``warmup_fraction`` of the steps, then falls
    linearly to ``end_factor``; the run's length is the Trainer's (``max_steps`` or ``max_epochs``).

    Lookahead: every ``lookahead_every`` steps, the weights and BatchNorm statistics are pulled to
    an exponential average with decay ``lookahead_decay ** lookahead_every * (step / steps) ** 3``;
    after the last step the average is copied in. The average is saved in checkpoints.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: (channels, height, width) of the input (from the datamodule); at least 9x9.
        widths: Channels of the three conv groups.
        batchnorm_momentum: Weight of the old running statistics in BatchNorm's average (airbench's
            convention; PyTorch's momentum is one minus this).
        batchnorm_eps: Added to BatchNorm's variance (airbench: 1e-12). Larger values keep channels that are
            almost constant over a batch, as on MNIST's black background, from being amplified.
        logit_scale: Factor on the logits.
        whiten_eps: Added to the eigenvalues before the whitening filters are scaled by their inverse square root.
        whiten_images: Training images whose 2x2 patches set the whitening filters.
        whiten_bias_epochs: Epochs during which the whitening bias trains; frozen after.
        whiten_float32: Whiten in float32 under mixed precision (airbench: in the network's precision). The
            filters of the weakest patch directions are large (up to 1/sqrt(whiten_eps), 45) and their taps
            cancel on flat regions, where bfloat16's rounding leaves noise: needed on MNIST's black background.
        lr: Learning rate per 1,024 examples (decoupled from the momentum).
        weight_decay: Weight decay per 1,024 examples (decoupled from the learning rate).
        momentum: Nesterov momentum of SGD.
        bias_scaler: Factor on the learning rate (not the decay) of BatchNorm biases.
        warmup_fraction: Fraction of the steps over which the learning-rate factor rises to 1.
        start_factor: Learning-rate factor at the first step.
        end_factor: Learning-rate factor at the last step.
        lookahead_every: Steps between lookahead updates (0 turns lookahead off).
        lookahead_decay: Per-step decay of the lookahead average, before the cubic ramp.
        label_smoothing: Label smoothing of the cross-entropy loss.
        tta: Test-time augmentation in validation, test and prediction: airbench's 6 views
            (flip_translate) by default, none for digits; flip or none (see ``ImageClassifier``).
        channels_last: Keep weights and activations in channels-last memory layout (faster convolutions).
        class_weights: Class weights of the training loss: none, balanced or one per class (see ``ImageClassifier``).
        class_weights_from_epoch: Deferred re-weighting: the weights apply from this epoch on (see ``ImageClassifier``).
    """

    flip_tta: TTAName = "flip_translate"

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        widths: tuple[int, int, int] = (64, 256, 256),
        batchnorm_momentum: float = 0.6,
        batchnorm_eps: float = 1e-12,
        logit_scale: float = 1 / 9,
        whiten_eps: float = 5e-4,
        whiten_images: int = 5000,
        whiten_bias_epochs: int = 3,
        whiten_float32: bool = False,
        lr: float = 11.5,
        weight_decay: float = 0.0153,
        momentum: float = 0.85,
        bias_scaler: float = 64.0,
        warmup_fraction: float = 0.23,
        start_factor: float = 0.2,
        end_factor: float = 0.07,
        lookahead_every: int = 5,
        lookahead_decay: float = 0.95,
        label_smoothing: float = 0.2,
        tta: TTAName | None = None,
        channels_last: bool = True,
        class_weights: ClassWeightsName | list[float] = "none",
        class_weights_from_epoch: int = 0,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            input_shape=input_shape,
            optimizer="sgd",
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=True,
            scheduler="none",  # its own, in configure_optimizers
            label_smoothing=label_smoothing,
            tta=tta,
            class_weights=class_weights,
            class_weights_from_epoch=class_weights_from_epoch,
        )
        in_channels, height, width = input_shape
        if min(height, width) < 9:
            raise ValueError(
                f"Airbench94 shrinks the image by one pixel and halves it three times: it needs inputs of at "
                f"least 9x9, got {height}x{width}: use data with larger images (ImageFolder resizes them with "
                "--data.image_size), or another model"
            )
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {tuple(widths)}")
        if not 0 <= momentum < 1 or not 0 <= batchnorm_momentum < 1:
            raise ValueError(f"momentum and batchnorm_momentum must be in [0, 1), got {momentum}, {batchnorm_momentum}")
        if not 0 < warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in (0, 1), got {warmup_fraction}")
        if whiten_images < 1 or lookahead_every < 0 or whiten_bias_epochs < 0:
            raise ValueError("whiten_images must be positive; lookahead_every and whiten_bias_epochs 0 or more")
        whiten_width = 2 * in_channels * WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, WHITEN_KERNEL, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        nn.init.zeros_(self.whiten.bias)
        self.net = nn.Sequential(
            nn.GELU(),
            conv_group(whiten_width, widths[0], batchnorm_momentum, batchnorm_eps),
            conv_group(widths[0], widths[1], batchnorm_momentum, batchnorm_eps),
            conv_group(widths[1], widths[2], batchnorm_momentum, batchnorm_eps),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(widths[2], num_classes, bias=False),
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)
        self.lookahead: dict[str, Tensor] | None = None  # the average; made when training starts
        self.total_steps = 0  # the run's optimizer steps, set with the schedule in configure_optimizers

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=self.memory_format)
        if self.hparams.whiten_float32:
            with torch.autocast(x.device.type, enabled=False):
                x = self.whiten(x.float())
        else:
            x = self.whiten(x)
        return self.net(x) * self.hparams.logit_scale

    def setup(self, stage: str) -> None:
        """Whiten from the training images before training: a resumed run's checkpoint then replaces the filters.

        Done here, before DDP wraps the model, so that every process starts from rank 0's filters.
        """
        super().setup(stage)
        if stage == "fit":
            with torch.no_grad():
                self.whiten.weight.copy_(whitening_weight(self._whitening_images(), self.hparams.whiten_eps))

    def _whitening_images(self) -> Tensor:
        """The first ``whiten_images`` training images, normalized as the model sees them."""
        datamodule = self.trainer.datamodule
        train_set = getattr(datamodule, "train_set", None)
        if train_set is None:
            raise ValueError("Airbench94 whitens from the training images: fit it with a ClassificationDataModule")
        count = min(self.hparams.whiten_images, len(train_set))
        images = getattr(train_set, "images", None)  # in memory: no decoding
        if images is None:
            images = torch.stack([train_set[index][0] for index in range(count)])
        return normalize(images[:count].cpu(), datamodule.mean, datamodule.std)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        trainer = self.trainer
        batch = trainer.datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches
        # Airbench's units: with Nesterov momentum m, steps are 1 + 1 / (1 - m) times the gradient, so the
        # rate per example of a summed loss is lr / (1024 * (1 + 1 / (1 - m))). This loss is the batch's mean,
        # hence the rate times the batch; weight decay is given as what SGD multiplies by the rate, so that
        # every step decays by the same fraction whatever the rate.
        kilostep = 1024 * (1 + 1 / (1 - hp.momentum))
        lr = hp.lr / kilostep * batch
        decay_per_step = hp.weight_decay * batch / kilostep
        norm_biases = [m.bias for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        special = {id(p) for p in norm_biases} | {id(self.whiten.bias)}
        others = [p for p in self.parameters() if p.requires_grad and id(p) not in special]
        groups = [
            {"params": others, "lr": lr, "weight_decay": decay_per_step / lr},
            {"params": norm_biases, "lr": lr * hp.bias_scaler, "weight_decay": decay_per_step / (lr * hp.bias_scaler)},
            {"params": [self.whiten.bias], "lr": lr, "weight_decay": decay_per_step / lr},
        ]
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, nesterov=True)
        steps = self.total_steps = self._total_steps()  # the lookahead's ramp counts them too
        if trainer.num_training_batches == float("inf"):  # a run given in steps only has not loaded its data yet
            trainer.fit_loop.setup_data()
        steps_per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        schedule = (steps, hp.warmup_fraction, hp.start_factor, hp.end_factor)
        factor = LinearWarmupDecay(*schedule)
        whiten_bias_factor = LinearWarmupDecay(*schedule, stop_at=hp.whiten_bias_epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [factor, factor, whiten_bias_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _total_steps(self) -> int:
        steps = self.trainer.estimated_stepping_batches
        if steps == float("inf"):
            raise ValueError("Airbench94's schedule needs a finite --trainer.max_steps or --max_epochs")
        return int(steps)

    def on_train_start(self) -> None:
        if self.hparams.lookahead_every and self.lookahead is None:
            self.lookahead = {name: value.detach().clone() for name, value in self._averaged().items()}

    def _averaged(self) -> dict[str, Tensor]:
        """The floating-point weights and buffers (BatchNorm statistics) that lookahead averages."""
        return {name: value for name, value in self.state_dict().items() if value.is_floating_point()}

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The step, then lookahead: here rather than at the batch's end, so that the checkpoints saved at that
        step (by callbacks, which run before the model's own end-of-batch hook) hold the pulled weights."""
        super().optimizer_step(*args, **kwargs)
        every = self.hparams.lookahead_every
        if not every or self.lookahead is None:
            return
        step, total = self.global_step + 1, self.total_steps  # global_step counts this step once it is done
        if step >= total:
            self._pull_to_average(decay=1.0)
        elif step % every == 0:
            self._pull_to_average(decay=self.hparams.lookahead_decay**every * (step / total) ** 3)

    @torch.no_grad()
    def _pull_to_average(self, decay: float) -> None:
        """Move the average ``1 - decay`` of the way to the live values, then set the live values to it."""
        for name, live in self._averaged().items():
            average = self.lookahead[name]
            average.lerp_(live, 1 - decay)
            live.copy_(average)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.lookahead is not None:
            checkpoint["lookahead"] = {name: value.clone() for name, value in self.lookahead.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.lookahead = checkpoint.get("lookahead")


class LinearWarmupDecay:
    """Learning-rate factor by step: linear from ``start`` to 1 over ``warmup`` of ``steps``, then linear to ``end``.

    With ``stop_at``, the factor is 0 from that step on: a parameter group that stops training. A
    class of plain numbers rather than a closure: ``LambdaLR`` saves its attributes in checkpoints,
    which load with ``weights_only``.
    """

    def __init__(self, steps: int, warmup: float, start: float, end: float, stop_at: int | None = None) -> None:
        self.warmup_steps = max(1, int(steps * warmup))
        self.decay_steps = max(1, steps - self.warmup_steps)
        self.start, self.end, self.stop_at = start, end, stop_at

    def __call__(self, step: int) -> float:
        if self.stop_at is not None and step >= self.stop_at:
            return 0.0
        if step < self.warmup_steps:
            return self.start + (1 - self.start) * step / self.warmup_steps
        fraction = min(1.0, (step - self.warmup_steps) / self.decay_steps)
        return 1 + (self.end - 1) * fraction
