"""scripts/fit.py on several machines: two torchrun "nodes" on localhost, as a cluster of two would run it."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from datamodules import Digits
from tests.conftest import FIT
from tests.test_fit import only_run_dir

TIMEOUT = 240  # seconds for the whole two-node run; it takes well under a minute on 2 idle cores
ARGS = ["--data", "Digits", "--accelerator", "cpu", "--devices", "1", "--num_nodes", "2", "--strategy", "ddp"]
ARGS += ["--max_epochs", "1", "--data.batch_size", "64", "--data.num_workers", "0"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    # One thread per process: the two "nodes" share this machine's cores.
    return {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "120", "OMP_NUM_THREADS": "1"}


def test_two_nodes_with_torchrun_on_a_shared_folder(tmp_path: Path) -> None:
    # Both nodes start in the same folder, as on a cluster where the project lies on a shared filesystem.
    shared = tmp_path / "shared"
    shared.mkdir()
    port = free_port()
    logs = [tmp_path / f"node{rank}.log" for rank in range(2)]
    nodes = []
    for node_rank, log in enumerate(logs):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
        torchrun += ["--node_rank", str(node_rank), "--master_addr", "127.0.0.1", "--master_port", str(port)]
        with log.open("w") as out:  # a file, not a pipe: a full pipe would stall one node and so both
            nodes.append(
                subprocess.Popen(
                    [*torchrun, str(FIT), *ARGS],
                    cwd=shared,
                    env=env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a kill also ends torchrun's worker
                )
            )
    try:
        codes = [node.wait(timeout=TIMEOUT) for node in nodes]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    outputs = [log.read_text() for log in logs]
    report = "\n".join(f"===== node {rank} =====\n{output[-4000:]}" for rank, output in enumerate(outputs))
    assert codes is not None, f"no end within {TIMEOUT} s\n{report}"
    assert codes == [0, 0], report

    # One process group of 2: node_rank 0 -> global rank 0, node_rank 1 -> global rank 1.
    assert "All distributed processes registered. Starting with 2 processes" in outputs[0], report
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in outputs[0], report
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1], report
    # The summary is printed by global rank 0 only.
    assert outputs[0].count("Test accuracy:") == 1 and "Test accuracy:" not in outputs[1], report

    # Global rank 0 wrote the one run folder: config, checkpoints and test metrics.
    run = only_run_dir(shared)
    assert run.name == "digits-mlp-1"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["num_nodes"] == 2 and str(config["trainer"]["devices"]) == "1"
    checkpoints = {path.name for path in (run / "checkpoints").iterdir()}
    best = [name for name in checkpoints if name.startswith("best-epoch=")]
    assert "last.ckpt" in checkpoints and len(best) == 1, checkpoints
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1 and Path(metrics["checkpoint"]).name == best[0]

    # Each node trained on its half of the training images (DistributedSampler over a world of 2).
    data = Digits(batch_size=64)
    data.setup("fit")
    steps = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
    assert steps == math.ceil(math.ceil(len(data.train_set) / 2) / 64)


def test_num_nodes_not_matching_the_launcher_is_one_clear_error(tmp_path: Path) -> None:
    # The environment torchrun gives node 0 of `--nnodes 2 --nproc_per_node 1`; --num_nodes is left out.
    launched = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "2", "RANK": "0", "GROUP_RANK": "0", "LOCAL_RANK": "0"}
    launched |= {"LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    at = ARGS.index("--num_nodes")
    args = ARGS[:at] + ARGS[at + 2 :]
    result = subprocess.run(
        [sys.executable, str(FIT), *args],
        cwd=tmp_path,
        env={**env(), **launched},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    message = "`devices=1` and `num_nodes=1` in Lightning, but the product (1 * 1) does not match the world size (2)"
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
