"""What every datamodule shares: seeded splits, data loaders, and the data's shape and classes."""

import math
import os
import sys
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import Dataset, Subset

from datamodules.augment import AlternatingFlips, Augmentation, AutoAugmentName, FlipMode, PaddingMode, Preset
from datamodules.batches import LoaderBatches, ShardedBatches, ShardedBatchSampler, TensorBatches, TensorImages
from datamodules.errors import DataError
from datamodules.transforms import normalize

SamplerName = Literal["shuffle", "balanced"]


def split_indices(n: int, sizes: Sequence[float], seed: int, labels: Tensor | None = None) -> list[list[int]]:
    """Seeded random split of ``range(n)`` into the rest followed by one part per entry of ``sizes``.

    A size below 1 is a fraction of ``n``, a size of 1 or more a number of samples, a size of 0 an
    empty part. Each part keeps the shuffled order, so that data stored class by class (image
    folders) is mixed in every batch. With the samples' ``labels``, each part is stratified (holds
    the classes in the proportions of the whole) where every part is large enough to hold every
    class; otherwise the split is plain.
    """
    counts = [round(size * n) if size < 1 else int(size) for size in sizes]
    if any(count < 1 for count, size in zip(counts, sizes, strict=True) if size) or sum(counts) >= n:
        raise DataError(
            f"cannot split {n} samples into parts of {list(sizes)}: "
            "each part needs at least one sample, and some must remain for training"
        )
    if labels is not None and (parts := stratified_split(labels, counts, seed)) is not None:
        return parts
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    bounds = list(accumulate([n - sum(counts), *counts]))
    return [order[: bounds[0]]] + [order[start:end] for start, end in pairwise(bounds)]


def stratified_split(labels: Tensor, counts: list[int], seed: int) -> list[list[int]] | None:
    """Indices of the rest and of parts of ``counts`` samples, each with every class in proportion; None where
    a part is too small to hold every class (or a class too small to be in every part)."""
    from sklearn.model_selection import train_test_split  # here: scikit-learn takes seconds to import

    rest, parts = np.arange(len(labels)), []
    for count in reversed(counts):  # the last part first, as scikit-learn splits one part off at a time
        if count == 0:  # an empty part (val_size 0)
            parts.insert(0, [])
            continue
        try:
            rest, part = train_test_split(rest, test_size=count, stratify=labels[rest].numpy(), random_state=seed)
        except ValueError:  # "The test_size = 2 should be greater or equal to the number of classes = 3"
            return None
        parts.insert(0, part.tolist())
    return [rest.tolist(), *parts]


def dataset_labels(dataset: Dataset) -> Tensor | None:
    """The labels of every sample of ``dataset``, where it holds them without reading its images."""
    if isinstance(dataset, TensorImages):
        return dataset.labels
    if isinstance(dataset, Subset):
        labels = dataset_labels(dataset.dataset)
        return None if labels is None else labels[torch.as_tensor(dataset.indices, dtype=torch.long)]
    targets = getattr(dataset, "targets", None)
    return None if targets is None else torch.as_tensor(targets)


def default_num_workers() -> int:
    """Loader worker processes when none are asked for: one per CPU core available, at most 4."""
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def available_memory() -> int:
    """Bytes of memory free for new data on this machine (``MemAvailable`` on Linux)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform: assume a small laptop
        return 4 * 2**30


class ClassificationDataModule(LightningDataModule):
    """Base of every datamodule: subclasses fill ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

    Each part is a :class:`TensorImages` (decoded once, kept in memory) or a per-image dataset of
    (uint8 tensor, label) pairs read through DataLoader workers every epoch. Either way, batches
    reach the device as uint8 and are normalized there, and augmented when training, in
    ``on_after_batch_transfer``: a quarter of the bytes to copy, and one operation per batch.

    Subclasses also define ``num_classes``, ``input_shape`` (channels, height, width),
    ``class_names``, and the per-channel ``mean`` and ``std`` of the pixels on a 0-1 scale; the CLI
    passes the first two to the model.

    Args:
        batch_size: Samples per batch, per device.
        num_workers: Worker processes that read images when they are not held in memory; default:
            one per CPU core, at most 4.
        pin_memory: Page-locked host memory for faster copies to a GPU; default: on when CUDA is available.
        val_size: Validation part of the training data, as a fraction (< 1) or a number of samples; 0 trains
            on all of it without validation (scripts/fit.py then tests ``last.ckpt``, as nothing is chosen).
            A fraction gives at least one sample per class (the best checkpoint is chosen on it); a number
            smaller than the number of classes is taken as asked, with a warning.
        seed: Seed of the train/validation split (independent of the training seed).
        in_memory: Decode all images once and keep them in memory as uint8 tensors (true), or read
            them image by image every epoch (false); default: in memory when they take at most a
            quarter of the free memory.
        on_device: Keep in-memory images on the accelerator for the whole run, so batches need no
            copy; default: on for a CUDA device when they take at most a quarter of its memory.
        folds: K-fold cross-validation (``scripts/cross_validate.py`` sets it): with 2 or more, the
            training data (training and validation parts) is split into ``folds`` stratified folds,
            seeded by ``seed``, and fold number ``fold`` is the validation part; ``val_size`` is unused.
        fold: Which fold is the validation part, from 0 to ``folds - 1``.
        augment: Preset of training augmentations, done on the device to each image on its own: none;
            crop (random crop after zero padding by an eighth of the height); crop_flip (and a random
            horizontal flip); airbench (translation by up to a sixteenth of the height with reflect
            padding, alternating flip); page (crop_flip and a cutout square of a quarter of the height).
            The options below change single parts of it; validation and test batches are never augmented.
        translate: Random crop after padding by this many pixels (a shift of up to that many in each direction).
        padding_mode: zeros or reflect, the padding of ``translate``.
        flip: Horizontal flip: none, random (each image with probability 1/2), or alternating (airbench:
            random in the first epoch, then each epoch flips exactly the images the one before did not).
            Refused by datamodules of digits, which a mirror turns into other shapes.
        cutout: Side of a square set to the mean pixel at a random place in each image (0: off).
        cutout_p: Probability that an image gets its cutout square.
        auto_augment: none, randaugment or trivialaugment (torchvision's RandAugment and
            TrivialAugmentWide with their default settings, drawn for each image).
        mixup_alpha: Mixup with the previous image of the batch, weight drawn from Beta(alpha, alpha)
            for each image (0: off); the loss then uses the mixed (soft) targets, and the training
            accuracy counts the label with the larger weight.
        cutmix_alpha: CutMix likewise (0: off).
        mix_p: Probability that an image is mixed (mixup or cutmix).
        mix_switch_p: Probability of cutmix rather than mixup for an image when both alphas are positive.
        sampler: How each epoch draws the training images: shuffle (each once, in a new order); balanced (as
            many as the training part holds, with replacement, each with probability proportional to
            1 / the number of training images of its class: every class about equally often). Either is
            seeded by the run's seed and the epoch, shared exactly among DDP processes, and resumable in
            the middle of an epoch.
    """

    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: Sequence[float]
    std: Sequence[float]
    flips_allowed: bool = True  # false for digits: a mirrored 2, 3, 4, 5, 7 or 9 is no digit

    def __init__(
        self,
        batch_size: int = 128,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        val_size: float = 0.1,
        seed: int = 42,
        in_memory: bool | None = None,
        on_device: bool | None = None,
        folds: int = 0,
        fold: int = 0,
        augment: Preset = "none",
        translate: int | None = None,
        padding_mode: PaddingMode | None = None,
        flip: FlipMode | None = None,
        cutout: int | None = None,
        cutout_p: float | None = None,
        auto_augment: AutoAugmentName | None = None,
        mixup_alpha: float | None = None,
        cutmix_alpha: float | None = None,
        mix_p: float | None = None,
        mix_switch_p: float | None = None,
        sampler: SamplerName = "shuffle",
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
        if not 0 <= val_size < float("inf"):
            raise ValueError(f"val_size must be 0 or more (a fraction below 1 or a count), got {val_size}")
        if folds == 1 or folds < 0 or (folds and not 0 <= fold < folds):
            raise ValueError(f"folds must be 0 (off) or at least 2, and fold in 0..folds-1; got {folds}, {fold}")
        if sampler not in SamplerName.__args__:
            raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SamplerName.__args__)}")
        self.save_hyperparameters()
        self.sampler = sampler
        self.batch_size = batch_size
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.val_size = val_size
        self.seed = seed
        self.in_memory = in_memory
        self.on_device = on_device
        self.folds = folds
        self.fold = fold
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.train_batches: ShardedBatches | None = None
        self.resume_position: dict[str, int] | None = None
        self.augment = augment
        self.augment_options = {
            "translate": translate,
            "padding_mode": padding_mode,
            "flip": flip,
            "cutout": cutout,
            "cutout_p": cutout_p,
            "auto_augment": auto_augment,
            "mixup_alpha": mixup_alpha,
            "cutmix_alpha": cutmix_alpha,
            "mix_p": mix_p,
            "mix_switch_p": mix_switch_p,
        }
        self.check_augmentation(Augmentation.resolve(augment, 32, **self.augment_options))  # bad options fail now
        self._augmentation: Augmentation | None = None
        self._alternating_flips: AlternatingFlips | None = None

    def val_count(self, n: int) -> int:
        """How many of ``n`` training samples the validation part takes (see ``val_size``); warns of one
        asked for with fewer samples than classes."""
        if self.val_size < 1:
            return max(round(self.val_size * n), self.num_classes) if self.val_size else 0
        if self.val_size < self.num_classes:
            print(
                f"warning: --data.val_size {self.val_size:g} holds fewer images than the {self.num_classes} classes: "
                f"the best checkpoint is chosen on them; give at least {self.num_classes} for one per class",
                file=sys.stderr,
                flush=True,
            )
        return int(self.val_size)

    def split_train_val(self, labels: Tensor) -> tuple[list[int], list[int]]:
        """Indices of the training and validation parts among samples with these ``labels``.

        A seeded random ``val_size`` part, or, for cross-validation, fold ``fold`` of ``folds`` stratified folds.
        """
        if not self.folds:
            return tuple(split_indices(len(labels), [self.val_count(len(labels))], self.seed))
        from sklearn.model_selection import StratifiedKFold  # here: scikit-learn takes seconds to import

        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        train, val = list(folds.split(labels.numpy(), labels.numpy()))[self.fold]
        return train.tolist(), val.tolist()

    @property
    def class_counts(self) -> list[int] | None:
        """The number of training images of each class (the training part, after the validation part is taken out;
        the whole of it under DDP, not one process's share); None before ``setup``, where the labels are unknown, or
        where some are out of range (the training loader then says which)."""
        labels = None if self.train_set is None else dataset_labels(self.train_set)
        if labels is None or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes):
            return None
        return torch.bincount(labels.long(), minlength=self.num_classes).tolist()

    def sample_weights(self, labels: Tensor) -> Tensor:
        """For the balanced sampler: each training sample's weight, 1 / the number of training samples of its class."""
        counts = torch.bincount(labels.long(), minlength=self.num_classes).double()
        return (1 / counts)[labels.long()]

    def keep_in_memory(self, n_images: int) -> bool:
        """Whether ``n_images`` of ``input_shape`` are to be decoded into memory (see ``in_memory``)."""
        if self.in_memory is not None:
            return self.in_memory
        return n_images * math.prod(self.input_shape) <= available_memory() // 4

    def _device_for(self, data: TensorImages) -> torch.device:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.on_device is not None:
            return device if self.on_device else torch.device("cpu")
        fits = device.type == "cuda" and data.images.nbytes * 4 <= torch.cuda.get_device_properties(device).total_memory
        return device if fits else torch.device("cpu")

    def _loader(self, dataset: Dataset | None, shuffle: bool, labelled: bool = True) -> TensorBatches | LoaderBatches:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its data loaders are asked for")
        labels = dataset_labels(dataset) if labelled else None
        if labels is not None and len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
            wrong = labels[(labels < 0) | (labels >= self.num_classes)]
            raise DataError(
                f"{len(wrong)} label(s) out of range in {type(self).__name__}'s data, e.g. {int(wrong[0])}: "
                f"its {self.num_classes} classes are numbered 0 to {self.num_classes - 1}; fix the label files"
            )
        trainer = self.trainer
        balanced = shuffle and self.sampler == "balanced"
        if balanced and labels is None:
            raise DataError(f"--data.sampler balanced needs the labels of {type(self).__name__}'s training images")
        sampler = ShardedBatchSampler(
            len(dataset),
            self.batch_size,
            shuffle,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            weights=self.sample_weights(labels) if balanced else None,
        )
        if isinstance(dataset, TensorImages) and self.in_memory is not False:
            return TensorBatches(dataset.to(self._device_for(dataset)), sampler)
        return LoaderBatches(
            dataset,
            sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> TensorBatches | LoaderBatches:
        if self.train_set is not None and self.batch_size > len(self.train_set):
            raise DataError(
                f"--data.batch_size {self.batch_size} is larger than the training set ({len(self.train_set)} "
                f"images): use at most {len(self.train_set)}"
            )
        self.train_batches = self._loader(self.train_set, shuffle=True)
        if self.resume_position is not None:
            self.train_batches.load_state_dict(self.resume_position)
            self.resume_position = None
        return self.train_batches

    def val_dataloader(self) -> TensorBatches | LoaderBatches | list:
        if self.val_set is not None and len(self.val_set) == 0:
            return []  # val_size 0: Lightning skips validation
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> TensorBatches | LoaderBatches:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> TensorBatches | LoaderBatches:
        return self._loader(self.test_set, shuffle=False, labelled=False)  # images to predict may have none

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data: the classes and the preprocessing that a trained model expects,
        and the training batches' place in their epoch, for a resumed run to go on from there.

        Lightning stores it in every checkpoint, so predictions and exports need no dataset; the
        statistics are those of this run (computed from the training part by some datamodules).
        """
        state = {
            "class_names": list(self.class_names),
            "input_shape": list(self.input_shape),
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
        }
        if self.train_batches is not None:
            state["train_batches"] = self.train_batches.state_dict()
        return state

    # Lightning restores the training loader's place in its epoch only when it makes the loader after
    # loading the checkpoint; a per-step schedule asks for the loader earlier (to count the steps), so
    # the datamodule, restored first, keeps that place and hands it to the next training loader.
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Normalize as the checkpoint's model was trained to, and resume the training batches where they were."""
        if state_dict.get("mean") is not None:
            self.mean, self.std = state_dict["mean"], state_dict["std"]
        self.resume_position = state_dict.get("train_batches")

    def check_augmentation(self, augmentation: Augmentation) -> None:
        """Refuse augmentations that make no sense for this data (flips of digits)."""
        if augmentation.flip != "none" and not self.flips_allowed:
            raise ValueError(
                f"{type(self).__name__} holds digits, which a mirror turns into other shapes: no flips "
                f"(add --data.flip none to keep the rest of --data.augment {self.augment})"
            )

    @property
    def augmentation(self) -> Augmentation:
        """The training augmentations: the preset and options, sized for this data's images (and checked against
        their size)."""
        if self._augmentation is None:
            augmentation = Augmentation.resolve(self.augment, self.input_shape[1], **self.augment_options)
            augmentation.check_size(*self.input_shape[1:])
            self._augmentation = augmentation
        return self._augmentation

    def flip_mask(self, n: int, device: torch.device) -> Tensor:
        """Which of the ``n`` images of the training batch at hand to flip: one bool per image."""
        mode = self.augmentation.flip
        if mode == "random":
            return torch.rand(n, device=device) < 0.5
        if mode == "none":
            return torch.zeros(n, dtype=torch.bool, device=device)
        batches = self.train_batches
        if batches is None or batches.indices is None or len(batches.indices) != n:
            raise RuntimeError("the alternating flip needs the sample indices of the training batch at hand")
        if self._alternating_flips is None:
            self._alternating_flips = AlternatingFlips(batches.sampler.n, batches.sampler.seed)
        return self._alternating_flips(batches.indices, batches.sampler.epoch).to(device)

    def preprocess(self, images: Tensor, train: bool) -> Tensor:
        """A batch of images (N, C, H, W) to the model's input: augmented if ``train``, normalized if uint8.

        Float images are taken as normalized already. Cutout, mixup and cutmix are left to
        ``on_after_batch_transfer``, which has the labels.
        """
        if train:
            images = self.augmentation.pixels(images, self.flip_mask(len(images), images.device))
        return normalize(images, self.mean, self.std) if images.dtype == torch.uint8 else images

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalize uint8 images, alone or first in a batch, on their device; augment training batches.

        Float images are not normalized again, but are augmented in training batches (images,
        labels); images alone (such as the model summary's example input) never are. With mixup or
        cutmix, training labels become soft targets (N, classes).
        """
        training = self.trainer is not None and self.trainer.training
        if isinstance(batch, Tensor):
            return self.preprocess(batch, train=False) if batch.dtype == torch.uint8 else batch
        images, *rest = batch
        if images.dtype != torch.uint8 and not training:
            return batch
        images = self.preprocess(images, train=training)
        if training and rest:
            images, rest[0] = self.augmentation.normalized(images, rest[0], self.num_classes)
        return type(batch)([images, *rest])
