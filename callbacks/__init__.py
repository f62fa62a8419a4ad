"""Lightning callbacks of this project."""

from callbacks.progress import ThrottledRichProgressBar
from callbacks.test_metrics import SaveTestMetrics

__all__ = ["SaveTestMetrics", "ThrottledRichProgressBar"]
