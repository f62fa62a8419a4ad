"""Lightning callbacks of this project, with the logger and checkpoint writer that keep runs apart and whole."""

from callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint
from callbacks.figures import ClassificationFigures
from callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from callbacks.progress import ThrottledRichProgressBar
from callbacks.progress_log import ProgressLog
from callbacks.random_state import RandomStateInCheckpoint
from callbacks.run_config import SaveRunConfig
from callbacks.run_logger import RunLogger
from callbacks.summary import NetworkSummary
from callbacks.test_metrics import SaveTestMetrics
from callbacks.tuning import BatchSizeTuner, LRFinder

__all__ = [
    "AtomicCheckpointIO",
    "BatchSizeTuner",
    "ClassificationFigures",
    "LRFinder",
    "NetworkSummary",
    "NonFiniteLossError",
    "ProgressLog",
    "RandomStateInCheckpoint",
    "RunCheckpoint",
    "RunLogger",
    "SaveRunConfig",
    "SaveTestMetrics",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
]
