"""The tutorials' training options, each through scripts/fit.py end to end on tiny data.

Custom activation, loss and optimizer; regularization and early stopping; NaN losses; the
learning-rate and batch-size finders; per-class accuracy, confusion matrix and misclassified images.
"""

import json
import math
import re
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.tuner.lr_finder import _LRFinder
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.figures import most_telling_mistakes
from callbacks.tuning import steepest_on_log_scale, unbias_losses
from models import MLP
from tests.conftest import QUICK, run_fit

# A small MLP on scikit-learn's digits: real data, no files, a fit of a second or two.
DIGITS = ["--data", "Digits", "--model", "MLP", "--model.hidden_sizes", "[32]", *QUICK]
DIGITS += ["--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false"]


def only_run_dir(cwd: Path) -> Path:
    (run,) = [path for path in (cwd / "lightning_logs").iterdir() if path.is_dir()]
    return run


def test_custom_activation_loss_and_optimizer_by_short_name(tmp_path: Path) -> None:
    args = ["--model.activation", "swish", "--model.loss", "FocalLoss", "--model.loss.gamma", "1.5"]
    args += ["--model.optimizer", "MomentumSGD", "--model.optimizer.momentum", "0.8", "--model.lr", "0.05"]
    args += ["--model.scheduler", "none"]
    # Class weights for the focal loss; the best checkpoint by the lowest validation loss, named after it.
    args += ["--model.class_weights", "[1, 1, 1, 1, 1, 1, 1, 1, 1, 3]", "--checkpoint.monitor", "val/loss"]
    result = run_fit(*DIGITS, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_config = yaml.safe_load((only_run_dir(tmp_path) / "config.yaml").read_text())
    assert run_config["checkpoint"]["mode"] == "min"
    config = run_config["model"]["init_args"]
    assert config["activation"] == "swish" and config["class_weights"] == [1, 1, 1, 1, 1, 1, 1, 1, 1, 3]
    focal = {"gamma": 1.5, "label_smoothing": 0.0, "weight": None}
    assert config["loss"] == {"class_path": "models.FocalLoss", "init_args": focal}
    assert config["optimizer"]["class_path"] == "models.MomentumSGD"
    assert config["optimizer"]["init_args"]["momentum"] == 0.8
    # The checkpoint rebuilds the same parts: the learned Swish slopes, the focal loss, the optimizer's state.
    (best,) = (only_run_dir(tmp_path) / "checkpoints").glob("best-epoch=0-val_loss=*.ckpt")
    model = MLP.load_from_checkpoint(best)
    assert type(model.criterion).__name__ == "FocalLoss" and model.criterion.gamma == 1.5
    assert model.class_weight.tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 3]
    betas = [module.beta.item() for module in model.modules() if type(module).__name__ == "Swish"]
    assert len(betas) == 1 and betas[0] != 1.0  # trained
    state = torch.load(best, weights_only=False)["optimizer_states"][0]
    assert state["param_groups"][0]["lr"] == 0.05 and state["param_groups"][0]["momentum"] == 0.8
    assert all("velocity" in entry for entry in state["state"].values())


def test_own_activation_loss_and_optimizer_by_import_path_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "my_parts.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn


            def cube_root(x):
                return torch.sign(x) * x.abs().pow(1 / 3)


            class HingeLoss(nn.Module):
                def __init__(self, margin: float = 1.0):
                    super().__init__()
                    self.margin = margin

                def forward(self, logits, target):
                    return nn.functional.multi_margin_loss(logits, target, margin=self.margin)


            class SignSGD(torch.optim.Optimizer):
                def __init__(self, params, lr: float = 0.01):
                    super().__init__(params, {"lr": lr})

                @torch.no_grad()
                def step(self, closure=None):
                    with torch.enable_grad():
                        loss = closure() if closure is not None else None
                    for group in self.param_groups:
                        for p in group["params"]:
                            if p.grad is not None:
                                p.add_(p.grad.sign(), alpha=-group["lr"])
                    return loss
            """
        )
    )
    (tmp_path / "parts.yaml").write_text(
        textwrap.dedent(
            """
            model:
              init_args:
                activation: my_parts.cube_root
                loss:
                  class_path: my_parts.HingeLoss
                  init_args: {margin: 0.5}
                optimizer: my_parts.SignSGD
                lr: 0.002
            """
        )
    )
    # With the CSV logger, which also shows that the figures are left out without TensorBoard.
    logger = ["--trainer.logger", "CSVLogger", "--trainer.logger.save_dir", "."]
    result = run_fit(*DIGITS, "--config", "parts.yaml", *logger, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    # Its steps in steps.csv (as loggers.StepCSVLogger), apart from metrics.csv's one row per epoch.
    assert (only_run_dir(tmp_path) / "steps.csv").is_file()
    assert (only_run_dir(tmp_path) / "metrics.csv").read_text().count("\n") == 2  # the header, epoch 0
    config = yaml.safe_load((only_run_dir(tmp_path) / "config.yaml").read_text())["model"]["init_args"]
    assert config["activation"] == "my_parts.cube_root"
    assert config["loss"]["init_args"]["margin"] == 0.5
    assert config["optimizer"]["class_path"] == "my_parts.SignSGD"
    accuracy = json.loads((only_run_dir(tmp_path) / "test_metrics.json").read_text())["test/acc"]
    assert accuracy > 0.3  # it learned: chance is 0.1


def test_unknown_activation_is_one_error_line(tmp_path: Path) -> None:
    result = run_fit(*DIGITS, "--model.activation", "no_such_module.swoosh", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --model.activation") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_regularization_early_stopping_clipping_anomaly_detection_and_evaluation(tmp_path: Path) -> None:
    args = ["--model.l1", "1e-4", "--model.weight_decay", "1e-3", "--model.dropout", "0.3", "--max_epochs", "6"]
    # min_delta of 1: no epoch can improve val/acc that much, so training stops after patience 1 + 1 epochs.
    args += ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor", "val/acc"]
    args += ["--trainer.callbacks.mode", "max", "--trainer.callbacks.patience", "1"]
    args += ["--trainer.callbacks.min_delta", "1"]
    args += ["--gradient_clip_val", "0.5", "--detect_anomaly", "true"]  # the remedies the NaN message names
    result = run_fit(*DIGITS, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    trainer = yaml.safe_load((run / "config.yaml").read_text())["trainer"]
    assert trainer["gradient_clip_val"] == 0.5 and trainer["detect_anomaly"] is True
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 1  # stopped early: 2 of 6 epochs
    hparams = last["hyper_parameters"]
    assert (hparams["l1"], hparams["weight_decay"], hparams["dropout"]) == (1e-4, 1e-3, 0.3)

    # Evaluation: per-class accuracy, confusion matrix and misclassified images, for validation and test.
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert {f"test/class_acc/{digit}" for digit in range(10)} <= set(metrics)
    assert {"test/acc", "test/f1", "test/auroc"} <= set(metrics)
    assert "class_acc" not in result.stdout.split("Test accuracy:")[1]  # the summary keeps to the overall metrics
    scalars, images, texts = set(), set(), {}
    for events in run.glob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        scalars |= set(accumulator.Tags()["scalars"])
        images |= set(accumulator.Tags()["images"])
        for tag in accumulator.Tags()["tensors"]:
            texts[tag] = accumulator.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
    assert {"val_class_acc/0", "val_class_acc/9"} <= scalars
    expected = {f"{stage}/{name}" for stage in ("val", "test") for name in ("confusion_matrix", "misclassified")}
    assert expected <= images
    caption = re.search(
        r"(\d+) of the (\d+) mistakes in test at step \d+: the most confident of each",
        texts["test/misclassified/text_summary"],
    )
    assert caption and int(caption[1]) == min(32, int(caption[2]))
    assert int(caption[2]) == round(360 * (1 - metrics["test/acc"]))  # of the 360 test images


def test_the_misclassified_images_are_the_most_confident_mistakes_of_each_class_in_turn() -> None:
    """A split stored sorted by class (image folders), seen in batches: its mistakes are shown across the classes."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(50)  # class 0's 50 images first, then class 1's, ...
    preds = torch.where(torch.rand(200, generator=generator) < 0.6, (labels + 1) % 4, labels)
    confidence = torch.rand(200, generator=generator)
    chosen = torch.arange(0)
    for start in range(0, 200, 32):  # as the callback sees them: each batch's choice joins those kept
        seen = torch.cat([chosen, torch.arange(start, min(start + 32, 200))])
        chosen = seen[most_telling_mistakes(labels[seen], preds[seen], confidence[seen], 10)]
    assert torch.equal(chosen, most_telling_mistakes(labels, preds, confidence, 10))  # as from all at once
    assert (preds[chosen] != labels[chosen]).all()
    rounds = labels[chosen][:4].tolist(), labels[chosen][4:8].tolist()  # each class's first, then its second
    assert sorted(rounds[0]) == sorted(rounds[1]) == [0, 1, 2, 3]
    assert confidence[chosen][:4].tolist() == sorted(confidence[chosen][:4].tolist(), reverse=True)
    for label in range(4):  # each class's most confident mistakes
        wrong = (labels == label) & (preds != labels)
        top = confidence[wrong].sort(descending=True).values
        shown = confidence[chosen][labels[chosen] == label]
        assert torch.equal(shown, top[: len(shown)])


def test_l1_penalty_adds_l1_times_the_weights_absolute_sum_to_the_training_loss() -> None:
    torch.manual_seed(0)
    batch = (torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    plain = MLP(10, (1, 8, 8), hidden_sizes=(16,))
    penalized = MLP(10, (1, 8, 8), hidden_sizes=(16,), l1=0.01)
    penalized.load_state_dict(plain.state_dict())
    for model in (plain, penalized):
        model.trainer = type("FakeTrainer", (), {"log_every_n_steps": 0})()  # the step reads only this attribute
    weights = sum(p.abs().sum() for p in plain.parameters() if p.dim() > 1)
    gap = penalized.training_step(batch, 0) - plain.training_step(batch, 0)
    assert gap.item() == pytest.approx(0.01 * weights.item(), rel=1e-5)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "breaks.py").write_text(
        textwrap.dedent(
            """
            from models import MLP


            class BreaksAtStep50(MLP):
                def forward(self, x):
                    out = super().forward(x)
                    return out * float("nan") if self.training and self.global_step >= 50 else out
            """
        )
    )
    # Digits in batches of 32: 40 training steps an epoch, so step 50 is batch 10 of epoch 1.
    result = run_fit(*DIGITS, "--model", "breaks.BreaksAtStep50", "--max_epochs", "3", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: the training loss became nan at epoch 1, step 50 (batch 10 of the epoch)")
    assert "--gradient_clip_val" in line and "--detect_anomaly" in line and "last.ckpt" in line
    assert "Traceback" not in result.stderr
    checkpoints = only_run_dir(tmp_path) / "checkpoints"
    for path in checkpoints.iterdir():  # written at the end of epoch 0, from finite weights
        checkpoint = torch.load(path, weights_only=False)
        assert checkpoint["epoch"] == 0
        assert all(torch.isfinite(tensor).all() for tensor in checkpoint["state_dict"].values())
    assert {path.name for path in checkpoints.iterdir()} >= {"last.ckpt"}


def test_learning_rate_and_batch_size_finders(tmp_path: Path) -> None:
    args = ["--trainer.callbacks+=BatchSizeTuner", "--trainer.callbacks.init_val", "16"]
    args += ["--trainer.callbacks.max_trials", "2", "--trainer.callbacks.steps_per_trial", "1"]
    args += ["--trainer.callbacks+=LRFinder", "--trainer.callbacks.num_training_steps", "20"]
    result = run_fit(*DIGITS, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    assert (run / "lr_find.png").stat().st_size > 0
    output = result.stderr + result.stdout
    assert "Learning-rate finder: training with lr" in output
    assert "Finding best initial lr" not in output  # Lightning's tqdm bar
    assert "Restored all states" not in output and "Restoring states" not in output  # the tuners' checkpoints
    checkpoint = torch.load(next((run / "checkpoints").glob("best-*.ckpt")), weights_only=False)
    suggested = checkpoint["hyper_parameters"]["lr"]
    assert suggested != 1e-3  # the default, replaced by the suggestion
    assert yaml.safe_load((run / "hparams.yaml").read_text())["model"]["lr"] == suggested  # as in the HPARAMS tab
    found = re.search(r"will continue with full run using batch size (\d+)", result.stderr + result.stdout)
    assert found and int(found[1]) == 32  # 16, then 32: two trials
    # The one-cycle schedule was built again: it peaks at the suggested rate, over the new number of steps.
    scheduler = checkpoint["lr_schedulers"][0]
    assert scheduler["total_steps"] == math.ceil(1258 / 32)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["max_lr"] == pytest.approx(suggested)


def test_lr_finder_losses_are_unbiased_from_the_first_step() -> None:
    # Lightning's smoothed curve for a constant loss of 2.3, searched from global step 5: its average after the
    # n-th loss is 2.3 * (1 - 0.98**n), divided by 1 - 0.98**(global step + 1), the global step being 5 + n.
    lightning = [2.3 * (1 - 0.98**n) / (1 - 0.98 ** (5 + n + 1)) for n in range(1, 31)]
    assert lightning[0] < 0.6  # the bias: far below the loss
    assert unbias_losses(lightning, start_step=5) == pytest.approx([2.3] * 30)
    assert math.isnan(unbias_losses([float("nan"), lightning[0]], start_step=5)[0])


def test_lr_finder_suggests_the_steepest_fall_per_decade_not_the_noise_at_tiny_rates() -> None:
    # A loss flat at 2.3 with a little noise, falling by 0.4 around lr 2e-3: the fall is where to train.
    finder = _LRFinder("exponential", 1e-8, 1, 100)
    lrs = [1e-8 * 1e8 ** (i / 99) for i in range(100)]
    noise = torch.Generator().manual_seed(0)
    falls = [0.4 / (1 + math.exp(-3 * (math.log10(lr) + 2.7))) for lr in lrs]
    losses = [2.3 - fall + 0.002 * float(torch.randn(1, generator=noise)) for fall in falls]
    finder.results = {"lr": lrs, "loss": losses}
    assert 5e-4 < steepest_on_log_scale(finder) < 5e-3
    assert finder._optimal_idx is not None
