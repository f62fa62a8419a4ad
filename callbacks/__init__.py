"""Lightning callbacks of this project, with the logger and checkpoint writer that keep runs apart and whole."""

from callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint
from callbacks.progress import ThrottledRichProgressBar
from callbacks.random_state import RandomStateInCheckpoint
from callbacks.run_config import SaveRunConfig
from callbacks.run_logger import RunLogger
from callbacks.test_metrics import SaveTestMetrics

__all__ = [
    "AtomicCheckpointIO",
    "RandomStateInCheckpoint",
    "RunCheckpoint",
    "RunLogger",
    "SaveRunConfig",
    "SaveTestMetrics",
    "ThrottledRichProgressBar",
]
