"""scripts/benchmark.py end to end on generated MNIST-shaped data: every method runs and the ratios are printed."""

import re
from pathlib import Path

from tests.conftest import run_script


def test_benchmark_runs_every_method_and_prints_the_ratios(tmp_path: Path) -> None:
    args = ["--generate", "--epochs", "2", "--rounds", "1", "--samples", "256", "--methods", "acd"]
    result = run_script("benchmark", *args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    for method in "acd":
        assert re.search(rf"^  \({method}\) .* [\d,]+ samples/s +peak +[\d,]+ MiB$", result.stdout, re.M), method
    for ratio in ("c/b", "d/b", "c/a", "c/d"):
        assert re.search(rf"^  {ratio} = \d+\.\d\d ", result.stdout, re.M), ratio
