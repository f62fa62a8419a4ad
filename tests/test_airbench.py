"""Airbench94 is the published network: whitening by its definition, airbench's layers, schedule and units."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.nn import functional as F

from datamodules import ImageFolder
from models import Airbench94
from models.airbench import LinearWarmupDecay, whitening_weight
from tests.fake_data import write_image_folder
from tests.test_models import overfit


def correlated_images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are correlated, as in real photographs."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, 20, 20, generator=generator)
    smooth = F.avg_pool2d(F.pad(noise, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]])
    return torch.einsum("dc,nchw->ndhw", mix, smooth) + 0.3


def test_whitening_filters_decorrelate_the_patches_as_defined() -> None:
    images, eps = correlated_images(), 5e-4
    weight = whitening_weight(images, eps)
    assert weight.shape == (24, 3, 2, 2)
    half = weight[:12].reshape(12, -1).double()
    assert torch.equal(weight[12:], -weight[:12])  # the filters and their negation
    patches = F.unfold(images.double(), 2).transpose(1, 2).reshape(-1, 12)
    moment = patches.T @ patches / len(patches)  # airbench's (uncentred) second moment of the 2x2 patches
    eigenvalues = torch.linalg.eigvalsh(moment).flip(0)  # largest first, as the filters are ordered
    # The filters' outputs are uncorrelated, with variances λ/(λ+eps): whitened, bar the weakest directions.
    covariance = half @ moment @ half.T
    assert torch.allclose(covariance, torch.diag(eigenvalues / (eigenvalues + eps)), atol=1e-6)
    # Each filter is a unit eigenvector divided by sqrt(λ + eps).
    assert torch.allclose(half.norm(dim=1) ** 2 * (eigenvalues + eps), torch.ones(12, dtype=torch.float64), atol=1e-6)
    # The conv layer computes exactly those projections.
    outputs = F.conv2d(images, weight[:12]).permute(0, 2, 3, 1).reshape(-1, 12).double()
    assert torch.allclose(outputs, patches @ half.T, atol=1e-4)


def test_default_network_is_airbench94() -> None:
    model = Airbench94(10, (3, 32, 32))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (3, 24, (2, 2)),
        (24, 64, (3, 3)),
        (64, 64, (3, 3)),
        (64, 256, (3, 3)),
        (256, 256, (3, 3)),
        (256, 256, (3, 3)),
        (256, 256, (3, 3)),
    ]
    assert convs[0].bias is not None and not convs[0].weight.requires_grad
    assert all(c.bias is None for c in convs[1:])
    # Identity (dirac) initialization of the first in_channels filters.
    first = convs[1].weight[:24]
    assert torch.equal(first[:, :, 1, 1], torch.eye(24)) and first.abs().sum() == 24
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(n.momentum == pytest.approx(0.4) and n.eps == 1e-12 and not n.weight.requires_grad for n in norms)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 1 and linear[0].bias is None and linear[0].in_features == 256
    assert model.hparams.logit_scale == pytest.approx(1 / 9)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 9), (3, 64, 48)])
def test_other_input_shapes(shape: tuple[int, int, int]) -> None:
    model = Airbench94(4, shape, widths=(8, 16, 16))
    assert model(torch.randn(3, *shape)).shape == (3, 4)


def test_batchnorm_eps_reaches_every_norm_and_the_whitening_can_stay_in_float32() -> None:
    model = Airbench94(10, (1, 28, 28), batchnorm_eps=1e-5, whiten_float32=True)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 and all(norm.eps == 1e-5 for norm in norms)
    outputs = {}
    model.whiten.register_forward_hook(lambda module, inputs, output: outputs.update(whiten=output.dtype))
    model.net[1][0].register_forward_hook(lambda module, inputs, output: outputs.update(conv=output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(2, 1, 28, 28))
    assert outputs == {"whiten": torch.float32, "conv": torch.bfloat16}


def test_too_small_images_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 9x9"):
        Airbench94(10, (1, 8, 8))


def test_schedule_rises_from_start_to_one_then_falls_to_end() -> None:
    factor = LinearWarmupDecay(steps=100, warmup=0.23, start=0.2, end=0.07)
    assert factor(0) == pytest.approx(0.2)
    assert factor(23) == pytest.approx(1.0)
    assert factor(11) == pytest.approx(0.2 + 0.8 * 11 / 23)
    assert factor(100) == pytest.approx(0.07)
    frozen = LinearWarmupDecay(steps=100, warmup=0.23, start=0.2, end=0.07, stop_at=30)
    assert frozen(29) == factor(29) and frozen(30) == 0.0


def test_decoupled_units_give_airbenchs_step_sizes() -> None:
    """Per step, SGD on the mean loss moves and decays the weights as airbench's SGD on its summed loss does."""
    model = Airbench94(10, (3, 32, 32))
    batch = 1024
    model.trainer = SimpleNamespace(  # what configure_optimizers reads of the Trainer
        datamodule=SimpleNamespace(batch_size=batch),
        world_size=1,
        accumulate_grad_batches=1,
        estimated_stepping_batches=485,
        num_training_batches=49,
    )
    optimizer = model.configure_optimizers()["optimizer"]
    others, norm_biases, whiten_bias = optimizer.param_groups
    kilostep = 1024 * (1 + 1 / (1 - 0.85))
    airbench_lr, airbench_decay = 11.5 / kilostep, 0.0153 * batch / kilostep  # the published code's figures
    # The gradient of the mean loss is that of the sum divided by the batch: the rate is times the batch.
    assert others["lr"] == pytest.approx(airbench_lr * batch * 0.2)  # the schedule's first factor
    assert norm_biases["lr"] == pytest.approx(64 * others["lr"])
    for group in optimizer.param_groups:  # the decay per step: rate times weight_decay, whatever the rate
        assert group["lr"] * group["weight_decay"] == pytest.approx(airbench_decay * 0.2)
        assert group["momentum"] == 0.85 and group["nesterov"]
    assert len(norm_biases["params"]) == 6 and whiten_bias["params"] == [model.whiten.bias]
    assert sum(len(group["params"]) for group in optimizer.param_groups) == sum(
        p.requires_grad for p in model.parameters()
    )


def test_airbench94_overfits_one_batch_with_its_own_optimizer() -> None:
    torch.manual_seed(0)
    model = Airbench94(10, (3, 32, 32), widths=(16, 32, 32), label_smoothing=0.0)
    x, y = correlated_images(32).repeat(1, 1, 2, 2)[:, :, :32, :32], torch.randint(0, 10, (32,))
    model.whiten.weight.data = whitening_weight(x, 5e-4)
    model.trainer = SimpleNamespace(  # the rates of airbench's batch of 1024, at the schedule's first factor
        datamodule=SimpleNamespace(batch_size=1024),
        world_size=1,
        accumulate_grad_batches=1,
        estimated_stepping_batches=30,
        num_training_batches=30,
    )
    first, last = overfit(model, x, y, steps=30)
    assert last < first / 20, (first, last)


def test_a_run_given_in_steps_only_trains(tmp_path: Path) -> None:
    """With ``max_steps`` and no epoch count, the Trainer has not loaded the data when the schedule is made."""
    root = write_image_folder(tmp_path / "images", {"train": 8, "test": 1}, ("a", "b"), size=(16, 16))
    data = ImageFolder(root=str(root), val_size=0, batch_size=4, num_workers=0)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = Trainer(max_steps=3, accelerator="cpu", **quiet)
    trainer.fit(Airbench94(2, (3, 16, 16), widths=(8, 8, 8), whiten_bias_epochs=1), data)
    assert trainer.global_step == 3
    assert [factor.stop_at for factor in trainer.lr_scheduler_configs[0].scheduler.lr_lambdas] == [None, None, 4]
