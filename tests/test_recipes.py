"""The training techniques of the best recipes: warm-up and schedules, no decay on norms and biases, weight
averaging, top-5 accuracy, training without validation, and runs over several seeds.

The weight average's resume and its agreement with scripts/test.py are checked in tests/test_resume.py.
"""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torchmetrics.classification import MulticlassF1Score

from cli.parser import build_cli
from datamodules import Digits
from models import CNN, MLP, MomentumSGD
from models.classifier import stage_metrics
from models.ema import EMAWeights, warmed_up_decay
from models.schedules import per_step_schedule
from tests.conftest import QUICK, run_script

SCHEDULE = {"warmup_epochs": 0.0, "warmup_start_factor": 0.1, "end_factor": 0.0, "step_size": 2, "gamma": 0.5}


def learning_rates(name: str, total: int = 20, per_epoch: int = 4, momentum: bool = True, **options) -> list[float]:
    """The learning rate of each of ``total`` steps of the schedule ``name`` (lr 1, ``per_epoch`` steps an epoch)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    hparams = SimpleNamespace(**{**SCHEDULE, **options})
    schedule = per_step_schedule(optimizer, name, total, per_epoch, hparams, cycle_momentum=momentum)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_warmup_rises_linearly_then_each_schedule_runs_over_the_remaining_steps() -> None:
    warm = [0.1, 0.4, 0.7]  # 0.75 epoch of 4 steps: 3 steps from 0.1 to 1
    for name in ("none", "cosine", "linear", "step"):
        assert learning_rates(name, warmup_epochs=0.75)[:3] == pytest.approx(warm), name
    assert learning_rates("none", warmup_epochs=0.75)[3:] == pytest.approx([1.0] * 17)
    cosine = learning_rates("cosine", warmup_epochs=0.75)
    assert cosine[3] == pytest.approx(1.0) and cosine[-1] == pytest.approx(0.5 * (1 + math.cos(16 / 17 * math.pi)))
    # Page's and airbench's: up to the peak, then linearly down to end_factor.
    linear = learning_rates("linear", warmup_epochs=0.75, end_factor=0.1)
    assert linear[3] == pytest.approx(1.0) and linear[-1] == pytest.approx(1 - 0.9 * 16 / 17)
    assert all(a > b for a, b in zip(linear[3:], linear[4:], strict=False))
    step = learning_rates("step", warmup_epochs=0.75)  # halved every 2 epochs (8 steps) after the warm-up
    assert step[3:11] == pytest.approx([1.0] * 8) and step[11:19] == pytest.approx([0.5] * 8)
    assert learning_rates("linear")[0] == 1.0 and learning_rates("cosine")[0] == 1.0  # no warm-up by default
    # onecycle: the warm-up is its own rising phase (pct_start 5/20), peaking at step 5 (index 4, as OneCycleLR does).
    onecycle = learning_rates("onecycle", warmup_epochs=1.25)
    assert max(range(20), key=onecycle.__getitem__) == 4 and onecycle[0] == pytest.approx(1 / 25)
    with pytest.raises(ValueError, match="warmup_epochs 5 is 20 of the run's 20 optimizer steps"):
        learning_rates("cosine", warmup_epochs=5)


def test_onecycle_keeps_the_momentum_when_asked() -> None:
    def momenta(cycle: bool) -> set[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
        schedule = per_step_schedule(optimizer, "onecycle", 10, 5, SimpleNamespace(**SCHEDULE), cycle_momentum=cycle)
        seen = set()
        for _ in range(10):
            seen.add(round(optimizer.param_groups[0]["momentum"], 6))
            optimizer.step()
            schedule.step()
        return seen

    assert momenta(False) == {0.9}
    assert len(momenta(True)) > 1


def test_no_weight_decay_on_biases_and_norms_for_built_in_and_custom_optimizers() -> None:
    def groups(**options) -> list[tuple[float, int]]:
        model = CNN(10, (1, 8, 8), scheduler="none", weight_decay=0.01, **options)
        optimizer = model.configure_optimizers()["optimizer"]
        return [(group["weight_decay"], sum(p.numel() for p in group["params"])) for group in optimizer.param_groups]

    model = CNN(10, (1, 8, 8))
    weights = sum(p.numel() for p in model.parameters() if p.dim() > 1)
    others = sum(p.numel() for p in model.parameters() if p.dim() <= 1)
    assert others and groups() == [(0.01, weights), (0.0, others)]
    assert groups(decay_norm_and_bias=True) == [(0.01, weights + others)]
    # A custom optimizer (the OptimizerCallable path) keeps its own decay for the weights.
    custom = groups(optimizer=lambda params, lr: MomentumSGD(params, lr=lr, weight_decay=0.05))
    assert custom == [(0.05, weights), (0.0, others)]


def test_weight_average_warms_up_its_decay() -> None:
    assert warmed_up_decay(0.999, 1) == pytest.approx(1 - 2**-0.75)
    assert warmed_up_decay(0.999, 100) == pytest.approx(1 - 101**-0.75)
    assert warmed_up_decay(0.999, 10**6) == 0.999
    assert [warmed_up_decay(0.99, n) for n in (1, 10, 100)] == sorted(warmed_up_decay(0.99, n) for n in (1, 10, 100))


def test_weight_average_as_a_trainer_callback_is_what_checkpoints_and_tests_after_training_use(tmp_path: Path) -> None:
    # As --trainer.callbacks+=EMAWeights: one instance for fit and test (--model.ema_decay makes one per stage).
    options = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    data = Digits(batch_size=64)
    model = MLP(10, (1, 8, 8), hidden_sizes=(16,), scheduler="none")
    every_epoch = ModelCheckpoint(tmp_path, save_top_k=-1)
    trainer = Trainer(callbacks=[EMAWeights(0.9), every_epoch], max_epochs=2, **options)
    trainer.fit(model, datamodule=data)
    first = str(next(tmp_path.glob("epoch=0-*.ckpt")))  # its average is not the final one
    (tested,) = trainer.test(model, datamodule=data, ckpt_path=first, verbose=False)
    (validated,) = trainer.validate(model, datamodule=data, ckpt_path=first, verbose=False)
    alone = Trainer(**options)
    (tested_alone,) = alone.test(MLP.load_from_checkpoint(first), datamodule=data, verbose=False)
    (validated_alone,) = alone.validate(MLP.load_from_checkpoint(first), datamodule=data, verbose=False)
    assert tested == pytest.approx(tested_alone, rel=1e-6) and validated == pytest.approx(validated_alone, rel=1e-6)


def test_top5_accuracy_only_with_more_than_five_classes() -> None:
    assert "acc5" in stage_metrics(10, "val") and "acc5" in stage_metrics(100, "test")
    assert "acc5" not in stage_metrics(5, "val") and "acc5" not in stage_metrics(10, "train")
    metric = stage_metrics(10, "test")["acc5"]
    probs = torch.tensor([[0.5, 0.2, 0.1, 0.08, 0.07, 0.05, 0, 0, 0, 0]] * 2)
    metric.update(probs, torch.tensor([4, 6]))  # 4 is the fifth most probable, 6 is not among the five
    assert metric.compute().item() == 0.5


def test_each_evaluation_metric_counts_on_its_own_after_a_batch_without_mistakes() -> None:
    torch.manual_seed(0)
    collection, f1 = stage_metrics(10, "test"), MulticlassF1Score(10, average="macro")
    for noise in (0.0, 3.0, 3.0):  # the first batch all right: top-1 and top-5 counts are then the same
        labels = torch.randint(0, 10, (64,))
        probs = (torch.nn.functional.one_hot(labels, 10) * 5 + noise * torch.randn(64, 10)).softmax(-1)
        collection.update(probs, labels)
        f1.update(probs, labels)
    computed = collection.compute()
    assert computed["test/f1"] == f1.compute() and computed["test/f1"] < computed["test/acc5"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.val_size", "0", "--model.scheduler", "plateau"], "no validation for the plateau schedule"),
        (
            ["--data.val_size", "0", "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/acc"],
            "EarlyStopping cannot monitor val/acc",
        ),
    ],
)
def test_options_that_need_validation_are_refused_without_it(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_cli(["--data", "Digits", *args])


def test_seeds_without_validation_with_warmup_linear_schedule_and_top5(tmp_path: Path) -> None:
    args = ["--data", "Digits", "--data.val_size", "0", "--model", "MLP", "--model.hidden_sizes", "[32]", *QUICK]
    args += ["--model.scheduler", "linear", "--model.warmup_epochs", "0.4", "--model.optimizer", "sgd"]
    args += ["--model.lr", "0.1", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    result = run_script("seeds", "--seeds", "2", "--first_seed", "3", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "lightning_logs" / "seeds_digits-mlp-1.json").read_text())
    assert record["seeds"] == [3, 4]
    assert record["runs"] == ["lightning_logs/digits-mlp-1", "lightning_logs/digits-mlp-2"]
    assert not any(name.startswith("val/") for name in record["metrics"])  # no validation part
    for name in ("test/acc", "test/acc5", "test/f1"):
        stats = record["metrics"][name]
        assert stats["mean"] == pytest.approx(sum(stats["values"]) / 2) and stats["std"] >= 0
    assert record["metrics"]["test/acc"]["values"][0] != record["metrics"]["test/acc"]["values"][1]  # seeds differ
    (line,) = [line.split() for line in result.stdout.splitlines() if line.startswith("  test/acc5 ")]
    assert line[1:3] == [f"{record['metrics']['test/acc5']['mean']:.4f}", "±"]
    for run in ("digits-mlp-1", "digits-mlp-2"):  # all the training data, last.ckpt kept and tested
        checkpoints = tmp_path / "lightning_logs" / run / "checkpoints"
        assert [path.name for path in checkpoints.iterdir()] == ["last.ckpt"]
        last = torch.load(checkpoints / "last.ckpt", weights_only=False)
        assert last["lr_schedulers"][0]["_milestones"] == [18]  # 0.4 of the 45 steps of 1,438 images in 32s
        assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-9)  # end_factor 0
    metrics = json.loads((tmp_path / "lightning_logs" / "digits-mlp-1" / "test_metrics.json").read_text())
    assert Path(metrics["checkpoint"]).name == "last.ckpt"


def test_seeds_refuses_a_seed_of_its_own(tmp_path: Path) -> None:
    """--seed would be overridden by each run's seed (the runs took 0 and 1 for --seed 5): refused, with the fix."""
    result = run_script("seeds", "--seeds", "2", "--data", "Digits", "--seed", "5", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "lightning_logs").exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --seed 5: seeds.py seeds each run itself; to start at 5, give --first_seed 5"
    )
