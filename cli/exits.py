"""How a command ends: a user's error as one ``error:`` line with its exit code (once under DDP), and the teardown."""

import sys
from argparse import ArgumentError
from collections.abc import Callable

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

from cli.environment import prepare_process
from cli.errors import USER_ERRORS, CommandError, os_error_message, user_message
from datamodules import DataError
from datamodules.errors import first_line


def report(err: BaseException, resumable: bool = True) -> int:
    """Print ``err`` as one ``error:`` line on stderr; returns the exit code (2 for a bad flag, else 1).

    Under DDP only the first process of the job to meet an error prints it (see ``first_to_report``).
    ``resumable``: whether the run has a checkpoint to resume from (what a full disk's line says to do).
    """
    if first_to_report():
        message = os_error_message(err, resumable) if isinstance(err, OSError) else user_message(err)
        print(f"error: {message}", file=sys.stderr)
    return 2 if isinstance(err, ArgumentError) else 1


def first_to_report() -> bool:
    """Whether this process is the first of its DDP job to report an error (always, outside DDP).

    The processes count their reports in the process group's key-value store, which global rank 0
    holds: an error that every process meets (bad data in setup) is printed once, and one that a
    single process meets (a damaged image in its shard, a NaN loss in its batch) by that process.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    try:
        store = torch.distributed.distributed_c10d._get_default_store()  # torch has no public access to it
        return store.add("user_errors_reported", 1) == 1
    except Exception:  # any failure to reach the store: it ended with global rank 0, after rank 0's report
        return False


def stopped_peer_code(err: RuntimeError) -> int | None:
    """The exit code for DDP's failure to reach a process of the job that has ended; None for other errors.

    That process said why (or printed its traceback): only where none of the job has reported an
    error yet is one line printed here.
    """
    if not (isinstance(err, torch.distributed.DistError) or "gloo" in str(err)):
        return None
    if first_to_report():
        print(f"error: another process of this DDP job stopped ({first_line(err)})", file=sys.stderr)
    return 1


def stopped_code(err: Exception) -> int:
    """The exit code of a command that ``err`` stopped: a user's error reported in one ``error:`` line, the end of
    a DDP process after another's error (see ``stopped_peer_code``); any other error is raised again."""
    if isinstance(err, USER_ERRORS):
        return report(err)
    if isinstance(err, RuntimeError) and (code := stopped_peer_code(err)) is not None:
        return code
    raise err


def run(command: Callable[[], int]) -> int:
    """Set up the process (``prepare_process``), run ``command``, return its exit code; then tear down the process
    group: left to interpreter shutdown, gloo can abort."""
    prepare_process()
    try:
        return command()
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_command(main: Callable[[list[str]], None]) -> int:
    """``run`` ``main`` on the command line's arguments; bad input ends it in one ``error:`` line, exit code 1 or 2."""

    def command() -> int:
        try:
            main(sys.argv[1:])
        except (CommandError, DataError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except (ArgumentError, MisconfigurationException, ValueError) as err:
            return report(err)
        return 0

    return run(command)
