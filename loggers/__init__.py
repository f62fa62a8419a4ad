"""Where a run's records go: its own folder, the loggers that write in it, and how its files are written.

- :class:`RunLogger` (TensorBoard, the default), :class:`StepCSVLogger` and :class:`RunMLFlowLogger`: Lightning's
  loggers, each in a run folder named ``DATA-MODEL-N`` that two runs never share (:class:`ReservedRunFolder`);
  :class:`RunFolder` gives a run its folder without logging anything.
- :class:`AtomicCheckpointIO`: checkpoint files written whole, never truncated by a crash.
- ``media.py``: figures and text for each logger that shows them; ``plots.py`` draws the figures (matplotlib).
- ``lightning_messages.py``: which of Lightning's log messages a user of this project sees.

Layer: imports none of this project's other packages.
"""

from loggers.checkpoint_io import AtomicCheckpointIO
from loggers.csv_logger import StepCSVLogger
from loggers.mlflow_logger import RunMLFlowLogger
from loggers.run_folder import ReservedRunFolder, RunFolder, RunLogger

__all__ = ["AtomicCheckpointIO", "ReservedRunFolder", "RunFolder", "RunLogger", "RunMLFlowLogger", "StepCSVLogger"]
