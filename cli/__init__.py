"""The command line: LightningCLI with this project's defaults, its errors and reports, and one module per command.

- ``parser.py``: ``FitCLI`` and ``build_cli``, the command line of scripts/fit.py; ``help.py`` its help;
  ``flags.py`` the short flags and default classes; ``config_files.py`` the files given to ``--config``.
- ``errors.py``: every error a user can fix, worded as one line; ``exits.py``: exit codes, reports under
  DDP, the teardown; ``environment.py``: the process set-up every command starts with.
- ``run_folders.py`` and ``resume.py``: a run's folder, and the checkpoint it resumes or starts from;
  ``reports.py``: what a run prints (its start line, its summary, where an interrupt left it).
- ``fitting.py``: one fit; ``repeated_fits.py``: what seeds.py and cross_validate.py share;
  ``trained.py``: what test.py, predict.py, export.py and quantize.py share; ``calibration.py``: what calibrate.py
  and ``fit.py --calibrate`` share.
- ``commands/``: one module per command, each with its ``main()``, which scripts/NAME.py and the
  installed ``lic-NAME`` call; importing it first makes Ctrl-C while the libraries load one line
  (``quiet_interrupt_while_loading``, here: light to import).

Layer: may import callbacks, models, datamodules and loggers; nothing imports it but scripts/.

Example, in a notebook: ``from cli.parser import build_cli; cli = build_cli(["--config", "configs/digits.yaml"])``
builds the model, datamodule and Trainer of a run, then ``cli.trainer.fit(cli.model, datamodule=cli.datamodule)``.
"""

import os
import signal
import sys
import threading
from typing import Any


def interrupted_while_loading(signum: int, frame: Any) -> None:
    """Ctrl-C while a command's libraries load: one line and exit code 130, not the traceback of an import."""
    print("interrupted while loading the libraries, before the run started: nothing written", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)  # at once: an exception raised inside an import can be caught and turned into another error


def quiet_interrupt_while_loading() -> None:
    """Handle Ctrl-C with ``interrupted_while_loading`` until ``cli.environment.prepare_process`` (where Python's own
    handler is still in place); the commands' package calls it before a command's heavy imports."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupted_while_loading)
