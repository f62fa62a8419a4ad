"""Checkpoint files written whole: a crash or a full disk while saving never leaves a truncated one."""

import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a hidden ``.NAME.part`` file beside it, then renames it into place.

    A crash or a full disk while writing leaves the previous file of that name whole (the rename
    replaces it in one step), never a truncated checkpoint as the only copy. Written with ``torch.save``
    straight into the ``.part`` file: Lightning's own save goes through fsspec, whose local "transaction"
    writes a temporary file in ``$TMPDIR`` and moves it afterwards, so a small ``$TMPDIR`` failed the run
    while the run's own disk had room. Remote paths (``s3://`` and the like) are written as Lightning does.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        directory, name = os.path.split(os.fspath(path))
        os.makedirs(directory or ".", exist_ok=True)
        partial = os.path.join(directory, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                torch.save(checkpoint, file)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
