"""Models learn, accept every data shape, take every optimizer and schedule, and reload from checkpoints."""

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from datamodules import Digits
from models import CNN, MLP, ImageClassifier
from models.classifier import BalancedAccuracy, MacroF1

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]


def quick_trainer(tmp_path: Path, **kwargs) -> Trainer:
    options = dict(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=2,
        limit_test_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**{**options, **kwargs})


def overfit(model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    """Train ``model`` on one batch for ``steps`` steps with its own optimizer; the first and last losses."""
    optimizer = model.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(steps):
        loss = model.model_step((x, y))[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("model_class", [MLP, CNN])
def test_model_overfits_one_batch(model_class: type[ImageClassifier]) -> None:
    torch.manual_seed(0)
    model = model_class(num_classes=10, input_shape=(1, 28, 28), scheduler="none", lr=3e-3)
    first, last = overfit(model, torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)), steps=60)
    assert last < first / 20


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("model_class", [MLP, CNN])
def test_models_take_the_shape_and_classes_of_the_data(model_class: type[ImageClassifier], shape: tuple) -> None:
    model = model_class(num_classes=7, input_shape=shape)
    assert model(torch.randn(5, *shape)).shape == (5, 7)
    probabilities = model.predict_step((torch.randn(5, *shape), torch.zeros(5)), 0)
    assert torch.allclose(probabilities.sum(1), torch.ones(5))


def test_mlp_options_build_the_documented_layers() -> None:
    model = MLP(10, (1, 28, 28), hidden_sizes=(128, 64), activation="gelu", dropout=0.2, batch_norm=True)
    layers = [type(layer).__name__ for layer in model.net]
    assert layers == ["Flatten", "Linear", "BatchNorm1d", "GELU", "Dropout"] * 1 + [
        "Linear",
        "BatchNorm1d",
        "GELU",
        "Dropout",
        "Linear",
    ]
    assert model.net[1].in_features == 784 and model.net[-1].out_features == 10
    assert [type(layer).__name__ for layer in MLP(10, (1, 8, 8), hidden_sizes=()).net] == ["Flatten", "Linear"]


def test_cnn_is_the_tutorial_architecture() -> None:
    model = CNN(10, (3, 32, 32))
    convs = [layer for layer in model.features if isinstance(layer, torch.nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [32, 64, 128]
    assert sum(isinstance(layer, torch.nn.MaxPool2d) for layer in model.features) == 3
    assert model.classifier[1].in_features == 128 * 4 * 4 and model.classifier[1].out_features == 128


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"input_shape": (28, 28)}, "input_shape must be"),
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"dropout": 1.5}, "dropout"),
        ({"input_shape": (1, 4, 4)}, "needs inputs of at least 8x8"),
    ],
)
def test_bad_model_options_are_refused_clearly(arguments: dict, message: str) -> None:
    options = {"num_classes": 10, "input_shape": (1, 28, 28), **arguments}
    with pytest.raises(ValueError, match=message):
        CNN(**options)


@pytest.mark.parametrize(
    ("optimizer", "scheduler"),
    [("sgd", "step"), ("adam", "cosine"), ("adamw", "onecycle"), ("rmsprop", "plateau"), ("adagrad", "none")],
)
def test_every_optimizer_and_schedule_trains(tmp_path: Path, optimizer: str, scheduler: str) -> None:
    model = MLP(10, (1, 8, 8), hidden_sizes=(32,), optimizer=optimizer, scheduler=scheduler, lr=0.01, step_size=1)
    trainer = quick_trainer(tmp_path, max_epochs=2)
    trainer.fit(model, datamodule=Digits(batch_size=64))
    lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]
    assert type(trainer.optimizers[0]).__name__.lower() == optimizer
    assert (lrs[0] == 0.01) == (scheduler in ("none", "plateau")), lrs
    assert set(trainer.callback_metrics) >= {
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/f1",
        "val/auroc",
    }


def test_load_from_checkpoint_needs_no_arguments(tmp_path: Path) -> None:
    model = CNN(10, (1, 8, 8), channels=(8, 16), hidden_size=32, lr=0.02, label_smoothing=0.1)
    trainer = quick_trainer(tmp_path)
    data = Digits()
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = CNN.load_from_checkpoint(tmp_path / "model.ckpt")
    assert restored.hparams == model.hparams
    x = torch.randn(4, 1, 8, 8)
    model.eval(), restored.eval()
    assert torch.equal(model(x), restored(x))


class GivenLogits(ImageClassifier):
    """A 'network' whose logits are its input images (1 x 1 x classes): known probabilities in, its metrics out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_ece_and_nll_equal_a_hand_computation_on_known_probabilities(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from models.calibration import calibration_figures

    # Confidences 0.95 (right), 0.95 (wrong), 0.55 (right), 0.35 (right); 15 bins of width 1/15: the two 0.95s share
    # the last bin (accuracy 0.5), the others are alone in theirs. ECE = sum over bins of share x |accuracy - conf|.
    probs = torch.tensor([[0.95, 0.03, 0.02], [0.95, 0.03, 0.02], [0.25, 0.55, 0.20], [0.35, 0.33, 0.32]])
    labels = torch.tensor([0, 1, 1, 0])
    ece = 2 / 4 * abs(0.5 - 0.95) + 1 / 4 * abs(1 - 0.55) + 1 / 4 * abs(1 - 0.35)
    nll = -(math.log(0.95) + math.log(0.03) + math.log(0.55) + math.log(0.35)) / 4
    for temperature in (1.0, 2.0):  # the metrics are those of the probabilities after the temperature
        model = GivenLogits(3, (1, 1, 3))
        model.temperature.fill_(temperature)
        logits = probs.log() * temperature  # divided by the temperature: the probabilities above again
        loader = DataLoader(TensorDataset(logits.view(4, 1, 1, 3), labels), batch_size=2)
        (tested,) = quick_trainer(tmp_path).test(model, dataloaders=loader, verbose=False)
        assert tested["test/ece"] == pytest.approx(ece, abs=1e-6) and ece == pytest.approx(0.5)
        assert tested["test/nll"] == pytest.approx(nll, abs=1e-6)
    assert calibration_figures(probs.log(), labels)["ece"] == pytest.approx(ece, abs=1e-6)


def test_temperature_recovers_a_known_temperature_and_changes_no_class() -> None:
    from models.calibration import fit_temperature

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 10, generator=generator) * 3
    labels = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)  # calibrated by construction
    temperature = fit_temperature(logits * 3, labels)  # over-confident 3 times
    assert temperature == pytest.approx(3, rel=0.05)
    model = GivenLogits(10, (1, 1, 10)).eval()
    images = (logits * 3).view(-1, 1, 1, 10)
    before = model.predict_step(images, 0)
    model.temperature.fill_(temperature)
    after = model.predict_step(images, 0)
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    assert after.max(-1).values.mean() < before.max(-1).values.mean()  # less confident


def test_macro_f1_and_balanced_accuracy_of_a_perfect_model_are_exactly_one_and_otherwise_torchmetrics_macro() -> None:
    labels = torch.arange(10).repeat(7)
    predictions = torch.where(labels == 3, 4, labels)[labels != 9]  # class 3 always wrong, class 9 never seen
    for ours, torchmetrics_class in ((MacroF1, MulticlassF1Score), (BalancedAccuracy, MulticlassAccuracy)):
        perfect = ours(10)
        perfect.update(labels, labels)
        assert perfect.compute().item() == 1.0  # torchmetrics' macro average: 1.0000001
        mine, theirs = ours(10), torchmetrics_class(10, average="macro")
        for metric in (mine, theirs):
            metric.update(predictions, labels[labels != 9])
        assert mine.compute().item() == pytest.approx(theirs.compute().item(), abs=1e-6)
