"""The errors a user can fix, and their wording: one line that says what to do, naming the option or file."""

import difflib
import errno
import importlib
import re
from argparse import ArgumentError
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser
from lightning.fabric.utilities.exceptions import MisconfigurationException

from callbacks import NonFiniteLossError
from cli.config_files import config_files, holds_key, read_yaml
from cli.flags import BUILT_IN, SHORT_FLAGS
from datamodules import DataError
from datamodules.errors import first_line


class RunError(Exception):
    """A problem with the run's checkpoint or folder, told to the user in one line."""


class CommandError(Exception):
    """Bad input to a command: the message is one line that says what to do."""


# Errors that are the user's to fix: reported as one `error:` line (see ``cli.exits.report``), without a traceback.
USER_ERRORS = (ArgumentError, DataError, MisconfigurationException, NonFiniteLossError, OSError, RunError, ValueError)


def parse_error(parser: ArgumentParser, err: ArgumentError, args: list[str]) -> ArgumentError:
    """One line for an error of the parser: invalid YAML with its place, an unknown option with the closest one
    (in a ``--config`` file, spelled as there), an option's error with the file that set it; else ``err`` itself."""
    inner = error_chain(err)[-1]
    empty = [file for file in config_files(args) if Path(file).is_file() and read_yaml(file) is None]
    if empty and str(inner).startswith("Unexpected config"):
        return ArgumentError(None, f"--config {empty[0]}: the file holds no options: give YAML such as 'model: CNN'")
    if isinstance(inner, yaml.MarkedYAMLError) and inner.problem_mark is not None:
        mark, files = inner.problem_mark, " ".join(config_files(args))
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return ArgumentError(None, f"--config {files}: not valid YAML: {inner.problem} ({where})")
    unknown = unknown_option(parser, err)
    key = unknown[0].removeprefix("--") if unknown else error_key(err)
    files = [file for file in config_files(args) if key and holds_key(file, key)]
    if unknown is None and not files:
        return err
    if unknown is None:
        message = user_message(err).removeprefix("--")
    else:
        name, close = unknown
        dashes = "" if files else "--"  # a file spells its keys without the dashes of a flag
        hint = f"did you mean {dashes}{close[2:]}?" if close else "see --help for the options"
        message = f"unknown option {dashes}{name[2:]}: {hint}"
    return ArgumentError(None, (f"--config {' '.join(files)}: " if files else "") + message)


def option_names(parser: ArgumentParser) -> list[str]:
    """Every ``--option`` that ``parser`` accepts."""
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def unknown_option(parser: ArgumentParser, err: ArgumentError) -> tuple[str, str | None] | None:
    """The unknown option that ``err`` reports, if it reports one, with the closest accepted option, if one is close."""
    messages = [str(e) for e in error_chain(err)]
    unknown = re.search(r"unrecognized arguments: (--[^\s=]+)", messages[-1])
    nested = re.fullmatch(r"Option '([^']+)' is not accepted", messages[-1])
    group = re.fullmatch(r"Group '([^']+)' does not accept option '([^']+)'", messages[-1])
    class_path = next((m[1] for text in messages if (m := re.search(r"given class_path '([^']+)'", text))), None)
    if unknown or group:
        name, choices = unknown[1] if unknown else f"--{group[1]}.{group[2]}", option_names(parser) + [*SHORT_FLAGS]
    elif nested and class_path:
        key = re.search(r'Parser key "([^"]+)"', messages[0])[1]
        module, _, cls = class_path.rpartition(".")
        options = ArgumentParser()
        options.add_class_arguments(getattr(importlib.import_module(module), cls), key)
        name, choices = f"--{key}.{nested[1]}", option_names(options)
    else:
        return None
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
    return name, close[0] if close else None


def error_chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    return chain


def os_error_message(err: OSError, resumable: bool = True) -> str:
    """One line for a failure to read or write a file: what failed, and what to do (``resumable``: whether the run
    has a checkpoint to resume from)."""
    where = f"{err.filename}: " if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT) and not resumable:
        return (
            f"{where}no space left on the disk, before the run's first checkpoint: free some space, then start it again"
        )
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{where}no space left on the disk; the checkpoints written before are whole: "
            "free some space, then resume with --ckpt_path last"
        )
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
        return (
            f"{where}cannot write there ({err.strerror}): run from a writable folder, or point "
            "--trainer.default_root_dir at one"
        )
    return f"{where}{err.strerror or err}"


# jsonargparse's words for a value that is no number, such as "nan" (YAML's NaN is ".nan") or "two".
WRONG_NUMBER = re.compile(r"Expected a <class '(float|int)'>\. Got value: (.*)")


def error_line(err: BaseException) -> str:
    """The first line of ``err``'s message; for an error re-raised from a DataLoader worker, the original's."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "worker process" in lines[0]:
        return re.sub(r"^[\w.]+: ", "", lines[-1])  # "datamodules.errors.DataError: the message"
    return first_line(err)


def error_key(err: BaseException) -> str | None:
    """The option that an error of the parser is about, such as ``model.lr``, if it names one."""
    keys = [match[1] for e in error_chain(err) if (match := re.search(r'Parser key "([^"]+)"', str(e)))]
    return ".".join(dict.fromkeys(keys)) or None  # nested keys, outermost first: model, lr -> model.lr


def user_message(err: BaseException) -> str:
    """One line for the user from an error of the CLI: ours as they are, others' innermost cause, with its option."""
    chain = error_chain(err)
    text = error_line(next((e for e in chain if isinstance(e, (DataError, RunError))), chain[-1]))
    key = error_key(err)
    unknown = re.fullmatch(r"Expected a dot import path string: (.*)", text)
    if key in BUILT_IN and unknown:
        name, choices = unknown[1], BUILT_IN[key]
        by_lower = {choice.lower(): choice for choice in choices}
        close = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.5)
        hint = f"did you mean {by_lower[close[0]]}? " if close else ""
        return (
            f"unknown --{key} {name!r}: {hint}choose one of {', '.join(choices)}, "
            "or give an import path such as my_file.MyClass"
        )
    if (wrong := WRONG_NUMBER.fullmatch(text)) and key:
        kind, value = wrong[1], wrong[2]
        if kind == "float" and value.lower().lstrip("+-") in {"nan", "inf", "infinity"}:
            return f"--{key} must be a finite number, got {value}"
        return f"--{key} must be {'a whole number' if kind == 'int' else 'a number'}, got {value!r}"
    return f"--{key}: {text}" if key and not text.startswith("--") else text
