"""Lightning callbacks of this project."""

from callbacks.figures import ClassificationFigures
from callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from callbacks.progress import ThrottledRichProgressBar
from callbacks.test_metrics import SaveTestMetrics
from callbacks.tuning import BatchSizeTuner, LRFinder

__all__ = [
    "BatchSizeTuner",
    "ClassificationFigures",
    "LRFinder",
    "NonFiniteLossError",
    "SaveTestMetrics",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
]
