"""A TensorBoard logger whose runs never share a version folder, even when started at the same moment."""

from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger


class RunLogger(TensorBoardLogger):
    """TensorBoardLogger that creates its new ``version_N`` folder the moment it picks ``N``.

    TensorBoardLogger takes one more than the highest ``version_N`` in its folder and creates that
    folder only when it first writes, so two runs started together took the same number and wrote
    into one folder. Here the global-rank-0 process creates it at once, and takes the next number
    when another run created it first; the other ranks use rank 0's folder (Lightning broadcasts it).
    Every option is TensorBoardLogger's.
    """

    def _get_next_version(self) -> int:
        version = super()._get_next_version()
        if rank_zero_only.rank != 0 or "://" in str(self.root_dir):
            return version
        root = Path(self.root_dir)
        root.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (root / f"version_{version}").mkdir()
                return version
            except FileExistsError:
                version += 1

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        # Lightning adds "epoch" to every call: as train/epoch it joins the training curves instead of
        # being a group of its own that sorts, and opens, first.
        super().log_metrics(
            {("train/epoch" if name == "epoch" else name): value for name, value in metrics.items()}, step
        )
