"""ResNet9 takes the data's shapes, uses test-time augmentation only in eval mode, and learns."""

import pytest
import torch

from models import ResNet9
from tests.test_models import overfit

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES)
def test_resnet9_takes_the_shape_and_classes_of_the_data(shape: tuple) -> None:
    model = ResNet9(num_classes=7, input_shape=shape, width=0.125)
    assert model(torch.randn(5, *shape)).shape == (5, 7)
    model.eval()
    assert model(torch.randn(5, *shape)).shape == (5, 7)


def test_resnet9_default_width_is_the_speed_record_layout() -> None:
    model = ResNet9(10, (3, 32, 32))
    convs = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [64, 128, 128, 128, 256, 512, 512, 512]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_test_time_augmentation_is_the_mean_over_the_flip_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = ResNet9(10, (3, 32, 32), width=0.125)
    x = torch.randn(6, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        augmented = model.tta_logits(x)  # what validation, test and prediction use
        plain, flipped = model(x), model(x.flip(-1))
    assert torch.allclose(augmented, (plain + flipped) / 2, atol=1e-5)
    assert not torch.allclose(augmented, plain, atol=1e-3)

    model.train()
    torch.manual_seed(1)
    without = model(x)
    torch.manual_seed(1)
    assert torch.equal(model.tta_logits(x), without)


def test_resnet9_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = ResNet9(10, (3, 32, 32), width=0.0625, optimizer="sgd", lr=0.1, scheduler="none")
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    first, last = overfit(model, x, y, steps=25)
    assert last < first / 20, (first, last)
    # Eval mode (running BatchNorm statistics, flip TTA) still knows the batch.
    model.eval()
    with torch.no_grad():
        assert (model.tta_logits(x).argmax(1) == y).float().mean() >= 0.9


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"input_shape": (1, 4, 4)}, "needs inputs of at least 8x8"), ({"width": 0.0}, "width must be positive")],
)
def test_bad_resnet9_options_are_refused_clearly(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResNet9(**{"num_classes": 10, "input_shape": (3, 32, 32), **arguments})
