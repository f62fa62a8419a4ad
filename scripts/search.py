#!/usr/bin/env python
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
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from fit import USER_ERRORS, build_cli, expand_short_flags, fit, relative, report
from optuna_integration import PyTorchLightningPruningCallback

from callbacks import NonFiniteLossError


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


def objective(trial: optuna.Trial, space: dict[str, Any], fit_args: list[str]) -> float:
    """Train one trial's configuration; returns the best value of the metric over its epochs."""
    flags = [f"--{name}={suggest(trial, name, spec)}" for name, spec in space["params"].items()]
    mode = "max" if space["direction"] == "maximize" else "min"
    cli = build_cli([*fit_args, *flags, "--checkpoint.monitor", space["metric"], "--checkpoint.mode", mode])
    trial.set_user_attr("config", cli.parser.dump(cli.config, skip_none=False))
    trial.set_user_attr("run", relative(cli.trainer.log_dir))
    cli.trainer.callbacks.append(PyTorchLightningPruningCallback(trial, monitor=space["metric"]))
    fit(cli)
    return float(cli.trainer.checkpoint_callback.best_model_score)


def main() -> int:
    """Run the missing trials of the study, then write the best configuration; returns the exit code."""
    options, fit_args = parse_args(expand_short_flags(sys.argv[1:]))
    start = time.perf_counter()
    try:
        space = read_space(options.space)
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
            # A trial whose loss turns NaN is marked failed, and the search goes on.
            study.optimize(
                lambda trial: objective(trial, space, fit_args),
                n_trials=options.trials - done,
                catch=(NonFiniteLossError,),
            )
        best = study.best_trial
    except USER_ERRORS as err:
        return report(err)
    except KeyboardInterrupt:  # Optuna has marked the running trial failed; the finished ones are stored
        print("\ninterrupted: run the same command again to continue the study", file=sys.stderr)
        return 130
    options.output.write_text(best.user_attrs["config"])
    params = ", ".join(f"{name}={value}" for name, value in best.params.items())
    print(f"\nSearch: {len(study.trials)} trials in the study, {time.perf_counter() - start:.0f} s in this run")
    print(f"Best trial {best.number}: {space['metric']} {best.value:.4f} with {params} (run {best.user_attrs['run']})")
    print(f"Best configuration: {options.output}; train it with: python scripts/fit.py --config {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
