"""The classifier logic every model shares: loss, optimizer, learning-rate schedule, metrics."""

import inspect
import math
import warnings
from typing import Any, Literal

import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassCalibrationError,
    MulticlassF1Score,
)

from datamodules.names import shown_name
from models.ema import EMAWeights
from models.losses import CrossEntropy
from models.optimizers import parameter_groups
from models.schedules import per_step_schedule
from models.tta import TTAName, tta_logits

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
SchedulerName = Literal["none", "step", "cosine", "onecycle", "linear", "plateau"]
ClassWeightsName = Literal["none", "balanced"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}


STAGES = ("train", "val", "test")
ECE_BINS = 15  # equal-width confidence bins of the expected calibration error, as in Guo et al. 2017
# Buffers that checkpoints written before them lack, with the value that means "as then": T = 1, uncalibrated.
DEFAULT_STATE = {"temperature": torch.ones(())}


class SummedThenDivided:
    """The mean of a torchmetrics class metric's scores over the classes that occur in the labels or predictions,
    as its ``average="macro"``, for a metric made with ``average="none"``.

    torchmetrics' macro average divides each class's score by the number of classes before summing, in
    float32: a perfect score of 10 classes came out as 1.0000001. Summed first, then divided, the mean of
    scores of at most 1 is at most 1 (float rounding is monotonic), and a perfect one exactly 1.
    """

    def compute(self) -> Tensor:
        scores = super().compute()
        seen = (self.tp + self.fp + self.fn) > 0  # the states summed over DDP processes, as the scores
        return scores[seen].sum() / seen.sum().clamp(min=1)


class MacroF1(SummedThenDivided, MulticlassF1Score):
    """Macro F1: the mean of the classes' F1 scores (see ``SummedThenDivided``)."""

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, average="none", **kwargs)


class BalancedAccuracy(SummedThenDivided, MulticlassAccuracy):
    """Balanced accuracy: the mean of the classes' accuracies (recalls), as ``MulticlassAccuracy(average="macro")``
    (see ``SummedThenDivided``)."""

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes, average="none", **kwargs)


def stage_metrics(num_classes: int, stage: str) -> MetricCollection:
    """``<stage>/acc`` (accuracy); for val and test also ``<stage>/f1`` (macro F1), ``<stage>/bacc`` (balanced
    accuracy: the mean of the classes' recalls, torchmetrics' macro accuracy), and with more than 5 classes
    ``<stage>/acc5`` (top-5 accuracy: the true class among the 5 most probable); see ``ImageClassifier`` for AUROC.

    Training keeps to accuracy without argument checks: F1 and AUROC would add about half a
    millisecond to every step (AUROC keeps every prediction of the epoch), and each check waits for
    the GPU, while a training-set F1 or AUROC says little that its accuracy does not.
    """
    if stage == "train":
        return MetricCollection(
            {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}, prefix="train/"
        )
    metrics: dict[str, Metric] = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1": MacroF1(num_classes),
        "bacc": BalancedAccuracy(num_classes),
    }
    if num_classes > 5:
        metrics["acc5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    # No compute groups: the collection would share the states of metrics that were equal after their first
    # update, and after a batch without a mistake top-5 accuracy and macro F1 are: F1 then read the top-5 counts.
    return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)


def check_class_weights(
    class_weights: ClassWeightsName | list[float], num_classes: int, loss: nn.Module | None, from_epoch: int
) -> None:
    """Refuse class weights that cannot weight this loss: unknown names, lists of another length or with negatives."""
    if isinstance(class_weights, str):
        if class_weights not in ClassWeightsName.__args__:
            raise ValueError(f"unknown class_weights {class_weights!r}: give none, balanced or [w1, ..., wk]")
        if class_weights == "none":
            return
    elif (
        len(class_weights) != num_classes
        or not all(0 <= w < float("inf") for w in class_weights)
        or not any(class_weights)
    ):
        raise ValueError(
            f"--model.class_weights {list(class_weights)}: give {num_classes} numbers, one per class, "
            "none negative and not all 0 (or balanced)"
        )
    if loss is not None and not hasattr(loss, "weight"):
        raise ValueError(
            f"--model.class_weights needs a loss with class weights (a weight attribute): {type(loss).__name__} "
            "has none; use the cross-entropy (the default) or FocalLoss"
        )
    if from_epoch < 0:
        raise ValueError(f"class_weights_from_epoch must be 0 or more, got {from_epoch}")


def balanced_class_weights(counts: list[int] | None, names: list[str]) -> Tensor:
    """scikit-learn's balanced class weights, ``n / (k * n_c)``, for training images counted ``counts``."""
    from sklearn.utils.class_weight import compute_class_weight  # here: scikit-learn takes seconds to import

    if counts is None:
        raise ValueError(
            "--model.class_weights balanced needs the datamodule's class_counts (the training labels, each within its "
            "classes): give the weights as a list, or check the labels"
        )
    if empty := [str(name) for name, count in zip(names, counts, strict=True) if count == 0]:
        raise ValueError(
            f"--model.class_weights balanced: no training image of the class(es) {', '.join(empty)}: "
            "add some, or give the weights as a list"
        )
    labels = np.repeat(np.arange(len(counts)), counts)
    return torch.tensor(compute_class_weight("balanced", classes=np.arange(len(counts)), y=labels), dtype=torch.float32)


class ImageClassifier(LightningModule):
    """Base class of every model: subclass it, build layers in ``__init__``, return logits from ``forward``.

    ``num_classes`` and ``input_shape`` (channels, height, width) come from the datamodule; the CLI
    links them, so a subclass only passes them on. Everything else here is an option of every model.

    Args:
        num_classes: Number of classes (from the datamodule).
        input_shape: Shape of one input image as (channels, height, width) (from the datamodule).
        optimizer: Optimizer: sgd (with ``momentum`` and ``nesterov``), adam, adamw, rmsprop or adagrad;
            or any ``torch.optim.Optimizer`` subclass by class name or import path (``MomentumSGD``,
            ``my_file.MyOptimizer``), whose own options are ``--model.optimizer.<name>``; it gets its
            learning rate from ``lr`` (so that schedules and the learning-rate finder work).
        lr: Learning rate; the peak rate for the onecycle schedule.
        weight_decay: L2 penalty (decoupled for adamw), for the built-in optimizers.
        decay_norm_and_bias: Apply weight decay to biases and normalization parameters too; by default
            they form a parameter group without it (timm's and torchvision's recipes), for any optimizer.
        momentum: Momentum for sgd and rmsprop.
        nesterov: Nesterov momentum for sgd.
        loss: Loss module called as ``loss(logits, targets)``: default the cross-entropy (with
            ``label_smoothing``); or any ``nn.Module`` by class name or import path (``FocalLoss``,
            ``my_file.MyLoss``), whose own options are ``--model.loss.<name>``.
        l1: L1 penalty: ``l1`` times the sum of the absolute values of the weights (not the biases or
            normalization parameters) is added to the training loss.
        scheduler: Learning-rate schedule: none; step (times ``gamma`` every ``step_size`` epochs);
            cosine (to zero over the run, per step); onecycle (warm-up then annealing, per step);
            linear (down to ``end_factor`` times ``lr`` over the run, per step); plateau (times
            ``gamma`` when val/acc stalls for ``patience`` epochs).
        step_size: Epochs between decays of the step schedule.
        gamma: Decay factor of the step and plateau schedules.
        patience: Epochs without val/acc improvement before the plateau schedule decays.
        label_smoothing: Label smoothing of the cross-entropy loss, in [0, 1).
        warmup_epochs: Linear warm-up of the learning rate over this many epochs (fractions allowed)
            before the schedule (any but plateau), which then runs over the remaining steps; for
            onecycle, the length of its rising phase (else 30% of the run).
        warmup_start_factor: Learning rate at the start of the warm-up, as a fraction of ``lr``, in (0, 1].
        end_factor: Learning rate at the end of the linear schedule, as a fraction of ``lr``, in [0, 1].
        cycle_momentum: Let the onecycle schedule cycle the momentum (0.95 to 0.85 and back) where the
            optimizer has one; false keeps ``momentum``.
        ema_decay: Validate, test and save an exponential moving average of the weights (and BatchNorm
            statistics) with this decay, after a warm-up (see ``models.ema.EMAWeights``); 0 turns it off.
        tta: Test-time augmentation in validation, test and prediction (never in training): none;
            flip (mean of the logits of the image and its mirror; 2 forward passes); flip_translate
            (airbench's 6 views: that, averaged with the same for the image shifted one pixel up-left
            and down-right with reflect padding). Refused for digits, which a mirror turns into other
            shapes. ``forward`` (and so export and quantization) stays one plain pass. None (the default
            of the models that average over mirror images, ``flip_tta``): ``flip_tta`` where the data
            allows flips, none for digits; resolved when training starts and kept in checkpoints.
        class_weights: Weights of the classes in the training loss, each sample's loss weighted by its label's
            class, label smoothing included (``loss`` needs a ``weight``, as the cross-entropy and ``FocalLoss``
            have: see ``models.losses``): none; balanced (scikit-learn's ``n / (k * n_c)`` from the
            datamodule's ``class_counts``, the training part's, read when training starts); or one
            non-negative number per class. Validation and test losses stay unweighted, comparable between runs.
        class_weights_from_epoch: Deferred re-weighting (Cao et al. 2019): the plain loss before this epoch
            (counted from 0), the weighted one from it on; 0 weights from the start.

    The ``temperature`` buffer (1 until ``scripts/calibrate.py`` or ``fit.py --calibrate`` fits it) divides the
    logits of validation, test and prediction: ``softmax(logits / T)`` are the probabilities they report.
    """

    flip_tta: TTAName = "flip"  # what a tta of None becomes where the data allows flips

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        optimizer: OptimizerName | OptimizerCallable = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        nesterov: bool = True,
        scheduler: SchedulerName = "onecycle",
        step_size: int = 10,
        gamma: float = 0.1,
        patience: int = 3,
        label_smoothing: float = 0.0,
        loss: nn.Module | None = None,
        l1: float = 0.0,
        decay_norm_and_bias: bool = False,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.1,
        end_factor: float = 0.0,
        cycle_momentum: bool = True,
        ema_decay: float = 0.0,
        tta: TTAName | None = "none",
        class_weights: ClassWeightsName | list[float] = "none",
        class_weights_from_epoch: int = 0,
    ) -> None:
        options = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got {tuple(input_shape)}")
        if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if not 0 < lr < float("inf"):
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if l1 < 0:
            raise ValueError(f"l1 must be 0 or more, got {l1}")
        if warmup_epochs < 0 or (warmup_epochs and scheduler == "plateau"):
            raise ValueError(f"warmup_epochs must be 0 or more, and 0 with the plateau schedule; got {warmup_epochs}")
        if not 0 < warmup_start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(
                "warmup_start_factor must be in (0, 1] and end_factor in [0, 1]; "
                f"got {warmup_start_factor}, {end_factor}"
            )
        if not 0 <= ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 turns the average off), got {ema_decay}")
        if tta is not None and tta not in TTAName.__args__:
            raise ValueError(f"unknown tta {tta!r}: choose one of {', '.join(TTAName.__args__)}")
        check_class_weights(class_weights, num_classes, loss, class_weights_from_epoch)
        # Collects the init arguments of the subclass too, so MyModel.load_from_checkpoint(path) just works.
        self.save_hyperparameters()
        # Under the CLI the hyperparameters are the subclass's own options; one that fixes some of these
        # (Airbench94 has its own optimizer) leaves them out: they are kept with the values it gave.
        for name, value in options.items():
            self.hparams.setdefault(name, value)
        self.example_input_array = torch.zeros(2, *input_shape)
        # Kept here, not read back from hparams: under the CLI those hold the config (class_path), not the object.
        self.optimizer_factory = optimizer
        self.tta = tta
        self.criterion = loss if loss is not None else CrossEntropy(label_smoothing=label_smoothing)
        for stage in STAGES:  # train_metrics, val_metrics, test_metrics; train_loss, val_loss, test_loss
            setattr(self, f"{stage}_metrics", stage_metrics(num_classes, stage))
            # nan_strategy="disable": checking each loss for NaN would wait for the GPU on every step.
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))
        # Accuracy of each class, for validation and test, logged apart from the collection: one number per class.
        # No argument checks: they would wait for the GPU, and argmax predictions are always valid.
        self.val_class_acc = MulticlassAccuracy(num_classes, average=None, validate_args=False)
        self.test_class_acc = MulticlassAccuracy(num_classes, average=None, validate_args=False)
        # Each class's AUROC, for a macro AUROC over the classes present (torchmetrics' counts an absent one as 0).
        self.val_auroc = MulticlassAUROC(num_classes, average="none")
        self.test_auroc = MulticlassAUROC(num_classes, average="none")
        # Expected calibration error as Guo et al. measure it (15 bins, l1), and the test NLL without label smoothing.
        self.val_ece = MulticlassCalibrationError(num_classes, n_bins=ECE_BINS, norm="l1")
        self.test_ece = MulticlassCalibrationError(num_classes, n_bins=ECE_BINS, norm="l1")
        self.test_nll = MeanMetric(nan_strategy="disable")
        # A buffer, so that checkpoints, load_from_checkpoint and the exported state_dict keep it.
        self.register_buffer("temperature", torch.ones(()))
        self._prepare_class_weights(class_weights)
        # The metrics of the last validation and test left out because they are undefined there, with why.
        self.undefined_metrics: dict[str, str] = {}

    def _prepare_class_weights(self, class_weights: ClassWeightsName | list[float]) -> None:
        """The ``class_weight`` buffer of the training loss: the weights given, or None until ``setup`` settles
        balanced ones. Not saved: derived from the options (and the data), so checkpoints stay as without them."""
        given = None if isinstance(class_weights, str) else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weight", given, persistent=False)
        if class_weights != "none":
            self.criterion.register_buffer("weight", None, persistent=False)  # set only within training steps

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> "ImageClassifier":
        """A new model of this class built from a run's hyperparameters (``model.hparams``, or ``model:`` of the
        run's ``hparams.yaml``): those that ``__init__`` takes, without the base class's options that a subclass
        fixes (Airbench94's optimizer), which the hyperparameters keep as well."""
        return cls(**{name: value for name, value in hparams.items() if name in cls.init_arguments()})

    @classmethod
    def init_arguments(cls) -> set[str]:
        """The names of the arguments that ``cls(...)`` takes, those passed on to a base class by ``**kwargs`` too."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" not in vars(klass):
                continue
            parameters = inspect.signature(klass.__init__).parameters.values()
            names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
            if klass is ImageClassifier or not any(p.kind is p.VAR_KEYWORD for p in parameters):
                break
        return names - {"self"}

    def monitorable_metrics(self) -> list[str]:
        """The metrics logged every epoch, that a checkpoint or early stopping can monitor (and val_class_acc/*)."""
        return sorted(
            {"train/loss", *self.train_metrics.keys(), "val/loss", *self.val_metrics.keys(), "val/ece", "val/auroc"}
        )

    def model_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Forward one batch; returns the loss, the logits (see ``tta_logits``) and the targets."""
        x, y = batch
        if x.dtype == torch.uint8:
            raise TypeError(
                "the model got raw uint8 images: the datamodule normalizes batches in on_after_batch_transfer, "
                "so pass it to the Trainer, as in trainer.fit(model, datamodule=dm)"
            )
        logits = self.tta_logits(x)
        return self.criterion(logits, y), logits, y

    def tta_logits(self, x: Tensor) -> Tensor:
        """The logits of ``x``: one forward pass in training; in eval mode, with the ``tta`` views, divided by the
        ``temperature``."""
        return self(x) if self.training else tta_logits(self, x, self.tta or self.flip_tta) / self.temperature

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A checkpoint from before temperature scaling holds none: its model is uncalibrated (T = 1)."""
        for name, value in DEFAULT_STATE.items():
            checkpoint["state_dict"].setdefault(name, value.clone())

    def setup(self, stage: str) -> None:
        """Settle balanced class weights from the data's class counts; resolve the default ``tta`` (None) by the
        data; refuse a flipping one for data that flips make no sense for (its ``flips_allowed`` is false)."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and self.hparams.class_weights == "balanced":
            names = getattr(datamodule, "class_names", None) or range(self.hparams.num_classes)
            self.class_weight = balanced_class_weights(getattr(datamodule, "class_counts", None), list(names))
        flips_allowed = getattr(datamodule, "flips_allowed", True)
        if self.tta is None:
            self.tta = self.hparams.tta = self.flip_tta if flips_allowed else "none"  # checkpoints keep it
        elif self.tta != "none" and not flips_allowed:
            raise ValueError(
                f"--model.tta {self.tta} averages over mirror images, and {type(datamodule).__name__} holds digits, "
                "which a mirror turns into other shapes: use --model.tta none"
            )

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> tuple[Tensor, Tensor, Tensor]:
        weighted = stage == "train" and self.class_weight is not None
        weighted = weighted and self.current_epoch >= self.hparams.class_weights_from_epoch
        if weighted:  # on the training loss only, from class_weights_from_epoch on (derived so: resumes are exact)
            self.criterion.weight = self.class_weight
        try:
            loss, logits, y = self.model_step(batch)
        finally:
            if weighted:
                self.criterion.weight = None
        probs = logits.softmax(dim=-1)
        # One value per sample, not (loss, weight=len(y)): torchmetrics ignores weights under nan_strategy="disable".
        getattr(self, f"{stage}_loss").update(loss.detach().expand(len(y)))
        # Mixup and cutmix targets are soft (N, classes): accuracy counts the label with the larger weight.
        getattr(self, f"{stage}_metrics").update(probs.detach(), y.argmax(-1) if y.is_floating_point() else y)
        return loss, logits, probs

    def _evaluation_step(self, batch: tuple[Tensor, Tensor], stage: str) -> dict[str, Tensor]:
        loss, logits, probs = self._shared_step(batch, stage)
        confidence, preds = probs.max(dim=-1)
        getattr(self, f"{stage}_class_acc").update(preds, batch[1])
        getattr(self, f"{stage}_auroc").update(probs.detach(), batch[1])
        getattr(self, f"{stage}_ece").update(probs.detach().float(), batch[1])
        if stage == "test":
            self.test_nll.update(F.cross_entropy(logits.detach().float(), batch[1], reduction="none"))
        # The predictions and their probabilities for callbacks (callbacks.ClassificationFigures).
        return {"loss": loss, "preds": preds, "confidence": confidence}

    def _log_epoch(self, stage: str) -> None:
        # Logged as torchmetrics objects: Lightning computes them (summed over DDP ranks) and resets them.
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), prog_bar=True)
        self.log_dict(getattr(self, f"{stage}_metrics"), prog_bar=stage != "train")
        if stage != "train":
            self.log(f"{stage}/ece", getattr(self, f"{stage}_ece"))
            if stage == "test":
                self.log("test/nll", self.test_nll)
            self._log_class_metrics(stage)

    def _log_class_metrics(self, stage: str) -> None:
        """Log each class's accuracy and the macro AUROC, leaving out those the data leaves undefined.

        A class without any sample has no accuracy, and AUROC needs two classes: logged as 0, they
        would read as a model that fails; they go to ``undefined_metrics`` instead, for the summary.
        """
        class_acc, auroc = getattr(self, f"{stage}_class_acc"), getattr(self, f"{stage}_auroc")
        names = getattr(self.trainer.datamodule, "class_names", None) or range(self.hparams.num_classes)
        names = [shown_name(str(name)) for name in names]  # metric names, in every logger and file
        accuracies = class_acc.compute()
        with warnings.catch_warnings():  # torchmetrics warns of each class absent: told below, once
            warnings.simplefilter("ignore")
            aurocs = auroc.compute()
        with class_acc.sync_context():  # the samples of each class, over every DDP rank
            present = (class_acc.tp + class_acc.fn > 0).tolist()
        # Validation's in a TensorBoard group of their own (val_class_acc/), which sorts after val/ and keeps its
        # curves from crowding val/'s; test's (one value each) only in test_metrics.json, not in the loggers.
        prefix = "val_class_acc/" if stage == "val" else f"{stage}/class_acc/"
        metrics, undefined = {}, {}
        for name, accuracy, found in zip(names, accuracies, present, strict=True):
            if found:
                metrics[f"{prefix}{name}"] = accuracy
            else:
                undefined[f"{prefix}{name}"] = f"no {stage} image of the class"
        if sum(present) >= 2:
            self.log(f"{stage}/auroc", aurocs[torch.tensor(present, device=aurocs.device)].mean(), prog_bar=True)
        else:
            undefined[f"{stage}/auroc"] = f"the {stage} images are all of one class"
        self.log_dict(metrics, logger=None if stage == "val" else False)  # None: no warning without a logger
        for name in undefined.keys() - self.undefined_metrics.keys():
            rank_zero_info(f"{name} is left out of the logs: {undefined[name]}, where it is undefined")
        self.undefined_metrics = {
            **{name: why for name, why in self.undefined_metrics.items() if not name.startswith(f"{stage}/")},
            **undefined,
        }
        class_acc.reset()
        auroc.reset()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self._shared_step(batch, "train")
        if self.hparams.l1:
            # All the norms in one fused kernel (as in clip_grad_norm_): cheap next to the step itself.
            weights = [p for p in self.parameters() if p.dim() > 1]
            loss = loss + self.hparams.l1 * torch.stack(torch._foreach_norm(weights, 1)).sum()
        # A step's loss only where Lightning writes the logs: each self.log call costs about a millisecond,
        # and the progress bar would wait for the GPU on every step to show it.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train/loss_step", loss.detach())
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Class probabilities for a batch of images, or of (images, labels) pairs."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.tta_logits(x).softmax(dim=-1)

    def configure_callbacks(self) -> list[Callback]:
        return [EMAWeights(self.hparams.ema_decay)] if self.hparams.ema_decay else []

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = parameter_groups(self, hp.decay_norm_and_bias)
        if isinstance(self.optimizer_factory, str):
            kwargs: dict[str, Any] = {"lr": hp.lr, "weight_decay": hp.weight_decay}
            if self.optimizer_factory == "sgd":
                kwargs.update(momentum=hp.momentum, nesterov=hp.nesterov and hp.momentum > 0)
            elif self.optimizer_factory == "rmsprop":
                kwargs.update(momentum=hp.momentum)
            optimizer = OPTIMIZERS[self.optimizer_factory](params, **kwargs)
        else:
            optimizer = self.optimizer_factory(params, lr=hp.lr)
        warmup = hp.warmup_epochs
        if hp.scheduler == "none" and not warmup:
            return {"optimizer": optimizer}
        if hp.scheduler == "step" and not warmup:
            scheduler = {"scheduler": torch.optim.lr_scheduler.StepLR(optimizer, hp.step_size, hp.gamma)}
        elif hp.scheduler == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=hp.gamma, patience=hp.patience
            )
            scheduler = {"scheduler": plateau, "monitor": "val/acc"}
        else:
            total_steps = self.trainer.estimated_stepping_batches
            if total_steps == float("inf"):
                raise MisconfigurationException(
                    f"the {hp.scheduler} schedule needs a finite --max_epochs or --trainer.max_steps"
                )
            # Known once total_steps is: the optimizer steps of an epoch, for the warm-up and the step schedule.
            steps_per_epoch = math.ceil(self.trainer.num_training_batches / self.trainer.accumulate_grad_batches)
            # Momentum is cycled by onecycle, where asked and the optimizer has one (not adagrad, say).
            has_momentum = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
            per_step = per_step_schedule(
                optimizer, hp.scheduler, int(total_steps), steps_per_epoch, hp, hp.cycle_momentum and has_momentum
            )
            scheduler = {"scheduler": per_step, "interval": "step"}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
