"""The logger presets against what they need: an MLflow tracking server, and packages that may be missing."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from jsonargparse import Namespace

from cli import parser
from cli.errors import RunError
from tests.conftest import QUICK, ROOT, run_script


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_mlflow_preset_logs_to_a_tracking_server(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command = [*command, "--workers", "1", "--backend-store-uri", str(tmp_path / "server_store")]
    command = [*command, "--artifacts-destination", str(tmp_path / "server_artifacts")]
    # No background job runners; the folder store, which starts faster than a new database (MLflow 3 asks for consent).
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_ALLOW_FILE_STORE": "true"}
    # A session of its own, so that its workers stop with it.
    server = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Started while the server starts: MLflow's client retries (1, 2, 4, ... s apart, 7 times) until it answers.
        preset = ["--config", str(ROOT / "configs" / "logger" / "mlflow.yaml"), "--data", "Digits", *QUICK]
        client_env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
        result = run_script("fit", *preset, cwd=tmp_path, env=client_env, timeout=240)
        assert result.returncode == 0, result.stderr
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("lightning_logs").experiment_id])
        assert {"test/acc", "val/acc", "train/loss"} <= set(run.data.metrics)
        assert run.data.params["model/class"] == "MLP" and run.data.params["data/class"] == "Digits"
        assert "test_metrics.json" in {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "run")}
        assert not (tmp_path / "mlflow.db").exists()  # the server's store, not the local one
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.parametrize("logger", ["lightning.pytorch.loggers.WandbLogger", "loggers.RunMLFlowLogger"])
def test_a_logger_whose_package_is_missing_stops_in_one_line(monkeypatch: pytest.MonkeyPatch, logger: str) -> None:
    monkeypatch.setattr(parser.importlib.util, "find_spec", lambda name: None)
    loggers = [Namespace(class_path="loggers.RunLogger"), Namespace(class_path=logger)]
    with pytest.raises(RunError) as raised:
        parser.check_logger_packages(loggers)
    package = "wandb" if "Wandb" in logger else "mlflow"
    assert str(raised.value).endswith(f"needs the {package} package, which is not installed: pip install {package}")
    parser.check_logger_packages(Namespace(class_path="loggers.RunLogger"))  # TensorBoard's is always there
