"""Lightning callbacks of this project, with the logger and checkpoint writer that keep runs apart and whole."""

from callbacks.checkpoint import AtomicCheckpointIO, RunCheckpoint
from callbacks.csv_logger import StepCSVLogger
from callbacks.ema import EMAWeights
from callbacks.figures import ClassificationFigures
from callbacks.hparams import RunHyperparameters
from callbacks.lr_monitor import TrainLRMonitor
from callbacks.metrics_csv import EpochMetricsCSV
from callbacks.mlflow_logger import RunMLFlowLogger
from callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from callbacks.progress import ThrottledRichProgressBar
from callbacks.progress_log import ProgressLog
from callbacks.provenance import SaveProvenance
from callbacks.random_state import RandomStateInCheckpoint
from callbacks.resume import OptionsInCheckpoint, RunInterrupted, StopOnInterrupt
from callbacks.run_config import SaveRunConfig
from callbacks.run_logger import ReservedRunFolder, RunFolder, RunLogger
from callbacks.share_files import ShareRunFiles
from callbacks.summary import NetworkSummary
from callbacks.test_metrics import SaveTestMetrics
from callbacks.tuning import BatchSizeTuner, LRFinder

__all__ = [
    "AtomicCheckpointIO",
    "BatchSizeTuner",
    "ClassificationFigures",
    "EMAWeights",
    "EpochMetricsCSV",
    "LRFinder",
    "NetworkSummary",
    "NonFiniteLossError",
    "OptionsInCheckpoint",
    "ProgressLog",
    "RandomStateInCheckpoint",
    "ReservedRunFolder",
    "RunCheckpoint",
    "RunFolder",
    "RunHyperparameters",
    "RunInterrupted",
    "RunLogger",
    "RunMLFlowLogger",
    "SaveProvenance",
    "SaveRunConfig",
    "SaveTestMetrics",
    "ShareRunFiles",
    "StepCSVLogger",
    "StopOnInterrupt",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
    "TrainLRMonitor",
]
