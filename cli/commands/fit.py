"""scripts/fit.py (lic-fit): train an image classifier, then test its best checkpoint and print a summary."""

import functools
import sys

from lightning.pytorch import Trainer

from callbacks import RunInterrupted, StopOnInterrupt
from cli.calibration import Calibration
from cli.errors import USER_ERRORS
from cli.exits import report, run, stopped_code
from cli.fitting import calibrated, fit, tested_checkpoint
from cli.flags import expand_short_flags
from cli.parser import FitCLI, build_cli
from cli.reports import print_summary, report_interrupted, report_interrupted_outside_training, where_to_resume
from cli.run_folders import discard_failed_run
from loggers.lightning_messages import CHECKPOINT_LOADED, lightning_messages_dropped


def fit_and_test(cli: FitCLI) -> tuple[str, str | None, Calibration | None]:
    """Fit, then test the best checkpoint (or ``last.ckpt``), or its calibrated copy with ``--calibrate``; returns
    the best one ("" for none), the tested one and the calibration."""
    best = fit(cli)
    tested, calibration = calibrated(cli, tested_checkpoint(cli.trainer, best))
    # verbose=False: Lightning's table would print raw float32 values; print_summary rounds them.
    with lightning_messages_dropped(*CHECKPOINT_LOADED):
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=tested, verbose=False)
    return best, tested, calibration


def fit_command() -> int:
    """Parse the options, fit, test the best checkpoint and print a summary; returns the exit code."""
    given = sys.argv[1:]
    # Rewritten in place, not passed as args: Lightning's DDP launcher starts the other ranks with sys.argv.
    sys.argv[1:] = expand_short_flags(sys.argv[1:])
    cli = None
    try:
        cli = build_cli()
        for callback in cli.trainer.callbacks:
            if isinstance(callback, StopOnInterrupt):
                callback.where_to_resume = functools.partial(where_to_resume, cli.trainer, given)
        best, tested, calibration = fit_and_test(cli)
    except RunInterrupted as stop:
        return report_interrupted(stop, cli.trainer, given)
    except (KeyboardInterrupt, SystemExit) as stop:
        if not isinstance(stop, KeyboardInterrupt) and not isinstance(stop.__context__, KeyboardInterrupt):
            raise  # (Lightning turns Ctrl-C outside the training steps into exit code 1)
        return report_interrupted_outside_training(cli.trainer if cli is not None else None)
    except USER_ERRORS as err:
        return report(err, resumable=cli is not None and not discard_failed_run(cli.trainer))
    except RuntimeError as err:  # under DDP: another process ended, and said why
        return stopped_code(err)
    trainer: Trainer = cli.trainer
    run_dir = trainer.log_dir  # every rank must ask: under DDP it is broadcast from rank 0
    if trainer.is_global_zero:
        print_summary(trainer, run_dir, best, tested, calibration)
    return 0


def main() -> int:
    """The command: ``fit_command`` in a prepared process; returns the exit code."""
    return run(fit_command)
