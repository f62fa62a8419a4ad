"""Hyperparameter search with Optuna over scripts/fit.py's options.

The search space, the metric and the pruner's settings come from a YAML file (see
configs/search_digits.yaml); every other option is scripts/fit.py's and is the same in every trial
(`python scripts/fit.py --help`). Each trial is a run of its own (a run folder, a TensorBoard run),
stopped early (pruned) when its validation metric after an epoch is worse than the median of the
earlier trials at that epoch. The study is kept in an SQLite file: run the same command again and
it continues where it stopped, up to --trials trials in all. The best trial's full configuration is
written as a YAML file that `scripts/fit.py --config` accepts.

Examples:
    python scripts/search.py --space configs/search_digits.yaml --trials 20 --config configs/digits.yaml --max_epochs 5
    python scripts/fit.py --config best.yaml       # train the best configuration found
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch.distributed as dist
import yaml
from optuna_integration import TorchDistributedTrial
from torch.distributed import ProcessGroup

from callbacks import NonFiniteLossError
from callbacks.pruning import PruneTrial
from cli.errors import USER_ERRORS
from cli.exits import run, stopped_code
from cli.fitting import fit
from cli.flags import expand_short_flags
from cli.parser import build_cli
from cli.run_folders import relative


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's own options, and the rest: scripts/fit.py's."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--space", type=Path, required=True, help="YAML file of the search space (see above).")
    parser.add_argument("--trials", type=int, default=20, help="Trials in the study in all, earlier runs included.")
    parser.add_argument("--storage", default="search.db", help="SQLite file of the study (default search.db).")
    parser.add_argument("--study", default="search", help="Name of the study in that file (default search).")
    parser.add_argument("--output", type=Path, default=Path("best.yaml"), help="Best configuration (best.yaml).")
    return parser.parse_known_args(argv)


def read_space(path: Path) -> dict[str, Any]:
    """The search space file: ``params`` (flag name to range or choices), ``metric``, ``direction``, ``pruner``."""
    space = yaml.safe_load(path.read_text())
    if not isinstance(space, dict) or not isinstance(space.get("params"), dict) or not space["params"]:
        raise ValueError(f"{path}: needs a `params:` mapping of option names to ranges or choices")
    space.setdefault("metric", "val/acc")
    space.setdefault("direction", "maximize")
    return space


def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
    """A value of option ``name``: ``{choices: [...]}``, or ``{low, high, log, step}`` (integers if both are)."""
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    if not {"low", "high"} <= set(spec):
        raise ValueError(f"search space {name}: give choices, or low and high")
    if isinstance(spec["low"], int) and isinstance(spec["high"], int):
        return trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1), log=spec.get("log", False))
    low, high = float(spec["low"]), float(spec["high"])  # YAML reads 1e-4 (without a dot) as a string
    return trial.suggest_float(name, low, high, step=spec.get("step"), log=spec.get("log", False))


def objective(trial: optuna.Trial | TorchDistributedTrial, space: dict[str, Any], fit_args: list[str]) -> float:
    """Train one trial's configuration; returns the best value of the metric over its epochs.

    Under DDP, every process runs it at once with the same trial, which global rank 0 draws.
    """
    flags = [f"--{name}={suggest(trial, name, spec)}" for name, spec in space["params"].items()]
    mode = "max" if space["direction"] == "maximize" else "min"
    cli = build_cli([*fit_args, *flags, "--checkpoint.monitor", space["metric"], "--checkpoint.mode", mode])
    trial.set_user_attr("config", cli.parser.dump(cli.config, skip_none=False))
    trial.set_user_attr("run", relative(cli.trainer.log_dir))
    pruning = PruneTrial(trial, space["metric"])
    cli.trainer.callbacks.append(pruning)
    fit(cli)
    if pruning.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
    return float(cli.trainer.checkpoint_callback.best_model_score)


def start_processes(fit_args: list[str]) -> ProcessGroup | None:
    """Under DDP, start the job's other processes and join them in a process group; returns a group for trials.

    Lightning would start them at the first fit, each running this script again from the start:
    each would then draw a trial of its own. Started now, before any trial, they instead take
    each trial from global rank 0 (see ``join_trials``). Outside DDP, returns None.
    """
    trainer = build_cli(fit_args).trainer
    if trainer.world_size == 1:
        return None
    strategy = trainer.strategy
    if strategy.launcher is not None:
        strategy.launcher.launch(strategy.setup_environment)  # starts the others, from global rank 0 only
    else:
        strategy.setup_environment()
    return dist.new_group(backend="gloo")  # TorchDistributedTrial talks through CPU tensors


def next_trial(group: ProcessGroup, more: bool | None = None) -> bool:
    """Whether there is another trial: global rank 0 says (``more``), the other processes hear it."""
    message = [more]
    dist.broadcast_object_list(message, src=0, group=group)
    return bool(message[0])


def join_trials(space: dict[str, Any], fit_args: list[str], group: ProcessGroup) -> None:
    """A process other than global rank 0: train every trial of the study with it, until it says it is done."""
    while next_trial(group):
        with contextlib.suppress(optuna.TrialPruned, NonFiniteLossError):  # rank 0 records them
            objective(TorchDistributedTrial(None, group=group), space, fit_args)


def run_study(
    options: argparse.Namespace, space: dict[str, Any], fit_args: list[str], group: ProcessGroup | None
) -> optuna.Study:
    """Run the missing trials of the study (as global rank 0 under DDP); returns the study."""
    study = optuna.create_study(
        storage=f"sqlite:///{options.storage}",
        study_name=options.study,
        load_if_exists=True,
        direction=space["direction"],
        pruner=optuna.pruners.MedianPruner(**space.get("pruner", {})),
    )
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=counted))
    if done < options.trials:
        print(f"Study {options.study!r} in {options.storage}: {done} trials done, {options.trials - done} to run")

        def shared_objective(trial: optuna.Trial) -> float:
            if group is None:
                return objective(trial, space, fit_args)
            next_trial(group, more=True)
            return objective(TorchDistributedTrial(trial, group=group), space, fit_args)

        # A trial whose loss turns NaN is marked failed, and the search goes on.
        study.optimize(shared_objective, n_trials=options.trials - done, catch=(NonFiniteLossError,))
    if group is not None:
        next_trial(group, more=False)
    return study


def search() -> int:
    """Run the missing trials of the study, then write the best configuration; returns the exit code."""
    options, fit_args = parse_args(expand_short_flags(sys.argv[1:]))
    start = time.perf_counter()
    try:
        space = read_space(options.space)
        group = start_processes(fit_args)
        if group is not None and dist.get_rank() != 0:
            join_trials(space, fit_args, group)
            return 0
        study = run_study(options, space, fit_args, group)
        best = study.best_trial
    except (*USER_ERRORS, RuntimeError) as err:  # RuntimeError: under DDP, another process ended, and said why
        return stopped_code(err)
    except KeyboardInterrupt:  # Optuna has marked the running trial failed; the finished ones are stored
        print("\ninterrupted: run the same command again to continue the study", file=sys.stderr)
        return 130
    options.output.write_text(best.user_attrs["config"])
    params = ", ".join(f"{name}={value}" for name, value in best.params.items())
    print(f"\nSearch: {len(study.trials)} trials in the study, {time.perf_counter() - start:.0f} s in this run")
    print(f"Best trial {best.number}: {space['metric']} {best.value:.4f} with {params} (run {best.user_attrs['run']})")
    print(f"Best configuration: {options.output}; train it with: python scripts/fit.py --config {options.output}")
    return 0


def main() -> int:
    """The command: ``search`` in a prepared process; returns the exit code."""
    return run(search)
