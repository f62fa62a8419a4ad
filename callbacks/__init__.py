"""Lightning callbacks of this project."""

from callbacks.test_metrics import SaveTestMetrics

__all__ = ["SaveTestMetrics"]
