"""Lightning's CSV logger, beside the run's own per-epoch ``metrics.csv``."""

import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from loggers.run_folder import ReservedRunFolder


class StepCSVLogger(ReservedRunFolder, CSVLogger):
    """CSVLogger whose file of every logged value, step by step, is ``steps.csv``, in a run folder as RunLogger's.

    Lightning's name for it, ``metrics.csv``, is the run folder's table of one row per epoch
    (:class:`callbacks.EpochMetricsCSV`). Every option is CSVLogger's; ``hparams.yaml`` is its own.
    """

    @property
    def experiment(self) -> ExperimentWriter:
        writer = super().experiment
        if isinstance(writer, ExperimentWriter):  # not the stand-in of ranks other than 0
            writer.metrics_file_path = os.path.join(writer.log_dir, "steps.csv")
        return writer
