"""scripts/search.py end to end on scikit-learn's digits: trials, pruning reports, resuming, the best YAML."""

import textwrap
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import QUICK, run_fit, run_script

DIGITS = ["--data", "Digits", "--model", "MLP", "--model.hidden_sizes", "[32]", *QUICK, "--max_epochs", "2"]
DIGITS += ["--trainer.enable_model_summary", "false", "--trainer.enable_progress_bar", "false"]
SPACE = """
metric: val/acc
direction: maximize
pruner: {n_startup_trials: 1, n_warmup_steps: 0}
params:
  model.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
  model.hidden_sizes: {choices: ["[16]", "[32]"]}
"""


def test_search_resumes_its_study_and_writes_a_config_fit_accepts(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(textwrap.dedent(SPACE))
    options = ["--space", "space.yaml", "--storage", "study.db", "--study", "digits", "--output", "best.yaml"]
    first = run_script("search", *options, "--trials", "1", *DIGITS, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "0 trials done, 1 to run" in first.stdout
    # The same command with more trials continues the study stored in study.db.
    second = run_script("search", *options, "--trials", "2", *DIGITS, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "1 trials done, 1 to run" in second.stdout
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 2
    for trial in study.trials:  # each epoch's val/acc was reported for pruning, up to the epoch it was pruned after
        assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        reported = list(trial.intermediate_values)
        assert reported == [0, 1] if trial.state.name == "COMPLETE" else reported in ([0], [0, 1])
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["model"]["init_args"]["lr"] == study.best_params["model.lr"]
    assert best["model"]["init_args"]["hidden_sizes"] == yaml.safe_load(study.best_params["model.hidden_sizes"])
    again = run_fit("--config", "best.yaml", "--max_epochs", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Test accuracy:" in again.stdout


def test_search_space_without_params_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("metric: val/acc\n")
    result = run_script("search", "--space", "space.yaml", *DIGITS, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: space.yaml: needs a `params:` mapping of option names to ranges or choices"


def test_search_under_ddp_trains_each_trial_of_global_rank_0_on_both_processes(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(textwrap.dedent(SPACE))
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max_epochs", "1"]
    result = run_script("search", "--space", "space.yaml", "--trials", "2", *DIGITS, *ddp, cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert result.stdout.count("Best trial") == 1
    # Two trials, not one per process and trial, each trained as one DDP run in a folder of its own.
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    assert len(study.trials) == 2
    runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["digits-mlp-1", "digits-mlp-2"]
    for trial in study.trials:
        assert list(trial.intermediate_values) == [0]
        config = yaml.safe_load((tmp_path / trial.user_attrs["run"] / "config.yaml").read_text())
        # TorchDistributedTrial passes floats to the other processes as float32, rank 0 included.
        assert config["model"]["init_args"]["lr"] == pytest.approx(trial.params["model.lr"], rel=1e-6)
        assert str(config["trainer"]["devices"]) == "2"
