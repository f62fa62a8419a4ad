"""Batches for one process: exact sharding across DDP ranks, from tensors in memory or through a DataLoader."""

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.errors import DataError


class TensorImages(Dataset):
    """Decoded images held as one uint8 tensor (N, C, H, W) with their int64 labels (N,)."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels):
            raise ValueError(
                f"TensorImages needs uint8 images (N, C, H, W) and N labels, got {images.dtype} "
                f"{tuple(images.shape)} and {len(labels)} labels"
            )
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, indices: list[int]) -> "TensorImages":
        """The images at ``indices``, copied into tensors of their own."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return TensorImages(self.images.index_select(0, index), self.labels.index_select(0, index))

    def to(self, device: torch.device) -> "TensorImages":
        """The same images on ``device`` (itself when they are there already)."""
        if self.images.device == torch.device(device):
            return self
        return TensorImages(self.images.to(device), self.labels.to(device))


class ShardedBatchSampler(Sampler[list[int]]):
    """Index batches of one process: every sample exactly once per epoch across all processes.

    An epoch has ``ceil(n / (world_size * batch_size))`` batches on every process, so DDP ranks
    always step together: full batches, then the remainder spread over the last batches of the
    epoch so that none is empty (on one process: the usual full batches and one partial batch).
    Nothing is padded or dropped, so validation and test samples are counted exactly once. With
    ``shuffle``, the order is drawn anew each epoch from the seed (the same on every rank), then
    dealt out to the ranks batch by batch. An epoch resumed from a checkpoint starts at batch
    ``start`` of its order, so that it ends as the interrupted one would have. With ``weights``, each epoch
    draws ``n`` samples with replacement instead, each with probability proportional to its weight (what
    torch's ``WeightedRandomSampler`` draws), seeded the same way, and deals them out likewise.

    Args:
        n: Number of samples.
        batch_size: Largest batch size.
        shuffle: Reshuffle every epoch; otherwise batches follow the sample order.
        seed: Seed of the shuffling; default: the one ``seed_everything`` set (``PL_GLOBAL_SEED``), else 0.
        rank: This process's rank among ``world_size`` processes.
        world_size: Number of processes that share the data.
        weights: One non-negative weight per sample: draw each epoch's samples with replacement in proportion to
            them (the balanced sampler); None: every sample once.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        weights: Tensor | None = None,
    ) -> None:
        if n < world_size:
            raise DataError(f"cannot share {n} sample(s) among {world_size} processes: use fewer devices or more data")
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        self.rank = rank
        self.world_size = world_size
        self.weights = weights
        self.epoch = 0
        self.start = 0
        if len(self) * world_size > n:
            raise DataError(
                f"{n} samples cannot give each of {world_size} processes {len(self)} non-empty batch(es) "
                f"of at most {batch_size}: raise the batch size"
            )

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch, so each epoch has its own order."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / (self.world_size * self.batch_size))

    def index_batches(self) -> list[Tensor]:
        """This epoch's batches of this process, as tensors of sample indices."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None:
            # The same draw on every rank (one seed), before the batches are dealt out: exact sharding, as shuffled.
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        total = len(self) * self.world_size
        # Batch i ends where full batches would, but early enough to leave a sample for each later batch.
        ends = [min((i + 1) * self.batch_size, self.n - (total - 1 - i)) for i in range(total - 1)]
        return list(order.tensor_split(ends)[self.rank :: self.world_size])[self.start :]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.index_batches():
            yield batch.tolist()


class ShardedBatches(ABC):
    """Batches of one process by a :class:`ShardedBatchSampler`, resumable in the middle of an epoch.

    Not a DataLoader, so Lightning neither replaces the sampler nor pads it under DDP; it still
    finds ``sampler`` and calls its ``set_epoch`` (``batch_sampler`` is the same object: Lightning
    reads both attributes). Lightning saves ``state_dict()`` in every checkpoint and hands it back
    to ``load_state_dict`` on resuming, so a resumed epoch goes on with the batches it had not yet
    trained on. Subclasses yield the batches in ``batches()``.
    """

    def __init__(self, sampler: ShardedBatchSampler) -> None:
        self.sampler = self.batch_sampler = sampler
        self.taken = 0  # batches of the current epoch handed out, those skipped on resuming included
        self.indices: Tensor | None = None  # sample indices of the batch last handed out (for the alternating flip)

    def __len__(self) -> int:
        return len(self.sampler)

    @abstractmethod
    def batches(self) -> Iterator[Any]:
        """This epoch's batches from the sampler's ``start`` on."""

    def __iter__(self) -> Iterator[Any]:
        # The loop's fetcher asks for no batch ahead of the one it trains on (it knows the length),
        # so the batches handed out are the batches trained on when a checkpoint is saved.
        self.taken = self.sampler.start
        for indices, batch in zip(self.sampler.index_batches(), self.batches(), strict=True):
            self.taken += 1
            self.indices = indices
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where the current epoch stands: its number and the batches handed out so far."""
        return {"epoch": self.sampler.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``: the rest of its epoch, or the next epoch when that one was complete."""
        done = state["taken"] >= len(self)
        self.sampler.epoch = state["epoch"] + done
        self.sampler.start = 0 if done else state["taken"]


class TensorBatches(ShardedBatches):
    """Batches of a :class:`TensorImages`, gathered by index in one operation: no DataLoader, no workers."""

    def __init__(self, data: TensorImages, sampler: ShardedBatchSampler) -> None:
        super().__init__(sampler)
        self.data = data

    def batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        batches = self.sampler.index_batches()  # never empty: a resumed epoch has batches left (load_state_dict)
        # One copy of the epoch's indices to the data's device, not one (waiting) copy per batch.
        indices = torch.cat(batches).to(self.data.images.device)
        for index in indices.split([len(batch) for batch in batches]):
            # index_select copies whole images; indexing (images[index]) copies byte by byte: 8x slower on a CPU.
            yield self.data.images.index_select(0, index), self.data.labels.index_select(0, index)


class LoaderBatches(ShardedBatches):
    """Batches of a per-image dataset through a DataLoader with worker processes, by a :class:`ShardedBatchSampler`."""

    def __init__(self, dataset: Dataset, sampler: ShardedBatchSampler, **loader_kwargs: Any) -> None:
        super().__init__(sampler)
        # A generator of its own: without one, every epoch's iterator draws its workers' seed from the global
        # generator, and an epoch resumed in its middle would draw once more than the uninterrupted run (the
        # workers only decode, so their seed changes nothing else).
        self.loader = DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator(), **loader_kwargs)

    def batches(self) -> Iterator[Any]:
        return iter(self.loader)
