"""Lightning's MLflow logger with a local store that MLflow 3 still accepts."""

import logging
import os
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger

LOCAL_STORE = "sqlite:///mlflow.db"


class RunMLFlowLogger(MLFlowLogger):
    """MLFlowLogger whose tracking store is ``MLFLOW_TRACKING_URI`` when set, else the local database ``./mlflow.db``.

    Lightning's default, the ``./mlruns`` folder store, is refused by MLflow 3 (it is in maintenance
    mode there), and Lightning reads ``MLFLOW_TRACKING_URI`` once, when it is imported. Artifacts
    (figures, the run folder's files) go to ``./mlartifacts`` unless a server or
    ``artifact_location`` says otherwise. MLflow's INFO lines (its database's creation) are left out of
    the output, and a run that the user interrupted (``interrupted``, set by ``callbacks.ShareRunFiles``) is
    marked KILLED, not FAILED. Every other option is MLFlowLogger's.

    Args:
        tracking_uri: Where runs are recorded: ``http://host:port`` for a tracking server, or a database URI.
        **kwargs: Options of Lightning's ``MLFlowLogger`` (``experiment_name``, ``run_name``, ``tags``, ...).
    """

    def __init__(self, tracking_uri: str | None = None, **kwargs: Any) -> None:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
        if uri == LOCAL_STORE and kwargs.get("artifact_location") is None:
            kwargs["artifact_location"] = os.path.abspath("mlartifacts")
        import mlflow  # noqa: F401  (sets its loggers' level when imported: set it here after that)

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        super().__init__(tracking_uri=uri, **kwargs)
        self.interrupted = False

    def finalize(self, status: str = "success") -> None:
        super().finalize("KILLED" if status == "failed" and self.interrupted else status)
