"""Lightning callbacks of this project: what a run saves, shows and checks beside training.

Layer: may import models, datamodules and loggers; never the command line (cli) or scripts.
"""

from callbacks.checkpoint import RunCheckpoint
from callbacks.class_counts import ClassCounts
from callbacks.figures import ClassificationFigures
from callbacks.hparams import RunHyperparameters
from callbacks.log_interval import StepLogInterval
from callbacks.lr_monitor import TrainLRMonitor
from callbacks.metrics_csv import EpochMetricsCSV
from callbacks.nonfinite import NonFiniteLossError, StopOnNonFiniteLoss
from callbacks.progress import ThrottledRichProgressBar
from callbacks.progress_log import ProgressLog
from callbacks.provenance import SaveProvenance
from callbacks.pruning import PruneTrial
from callbacks.random_state import RandomStateInCheckpoint
from callbacks.reliability import ReliabilityDiagram
from callbacks.resume import OptionsInCheckpoint, RunInterrupted, StopOnInterrupt
from callbacks.run_config import SaveRunConfig
from callbacks.share_files import ShareRunFiles
from callbacks.summary import NetworkSummary
from callbacks.test_metrics import SaveTestMetrics
from callbacks.tuning import BatchSizeTuner, LRFinder

# The classes that moved to loggers/ and models/, under the import paths that the config.yaml of a run from
# before the move names (callbacks.RunLogger, callbacks.AtomicCheckpointIO): --config with it still resumes it.
from loggers import AtomicCheckpointIO, RunFolder, RunLogger, RunMLFlowLogger, StepCSVLogger  # noqa: F401
from models.ema import EMAWeights  # noqa: F401

__all__ = [
    "BatchSizeTuner",
    "ClassCounts",
    "ClassificationFigures",
    "EpochMetricsCSV",
    "LRFinder",
    "NetworkSummary",
    "NonFiniteLossError",
    "OptionsInCheckpoint",
    "ProgressLog",
    "PruneTrial",
    "RandomStateInCheckpoint",
    "ReliabilityDiagram",
    "RunCheckpoint",
    "RunHyperparameters",
    "RunInterrupted",
    "SaveProvenance",
    "SaveRunConfig",
    "SaveTestMetrics",
    "ShareRunFiles",
    "StepLogInterval",
    "StopOnInterrupt",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
    "TrainLRMonitor",
]
