"""Random number generator states in every checkpoint, so that a resumed run draws what an uninterrupted one would."""

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def collect_random_state() -> dict[str, Any]:
    """This process's generator states: Python's, NumPy's, torch's on the CPU and on every CUDA device.

    As plain Python values: ``all_gather_object`` fails to carry tensors with this torch (2.14).
    """
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), position, has_gauss, cached_gauss),
        "torch": torch.get_rng_state().tolist(),
        "cuda": [state.tolist() for state in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def restore_random_state(state: dict[str, Any]) -> None:
    """Set the generators to ``state`` from :func:`collect_random_state`."""
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if state["cuda"] and torch.cuda.is_available():
        cuda = [torch.tensor(device, dtype=torch.uint8) for device in state["cuda"][: torch.cuda.device_count()]]
        torch.cuda.set_rng_state_all(cuda)


class RandomStateInCheckpoint(Callback):
    """Saves the random generators of every process in each checkpoint, and restores them on resuming.

    Lightning restores weights, optimizer, schedule and loop counters, but not the generators that
    draw dropout masks and augmentations: without them a resumed run diverges from an uninterrupted
    one. Under DDP every rank's states are gathered (one collective per checkpoint) and each rank
    gets its own back; a run resumed on another number of processes reuses them in turn.
    """

    def state_dict(self) -> dict[str, Any]:
        state = collect_random_state()
        if not _distributed():
            return {"ranks": [state]}
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, state)
        return {"ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict["ranks"]
        rank = dist.get_rank() if _distributed() else 0
        restore_random_state(ranks[rank % len(ranks)])
