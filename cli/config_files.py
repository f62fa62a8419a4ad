"""The YAML files given to ``--config``: found in the arguments, read, and searched for an option."""

from pathlib import Path
from typing import Any

import yaml


def config_files(args: list[str]) -> list[str]:
    """The files given to ``--config`` in ``args``."""
    after_flag = [value for flag, value in zip(args, args[1:], strict=False) if flag == "--config"]
    return after_flag + [arg.removeprefix("--config=") for arg in args if arg.startswith("--config=")]


def read_yaml(path: str) -> Any:
    """The YAML file at ``path``, or None where it cannot be read or parsed (the parser says why)."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None


def holds_key(path: str, key: str) -> bool:
    """Whether the YAML file at ``path`` sets the option ``key`` (``model.lr`` also as ``model.init_args.lr``)."""
    node = read_yaml(path)
    for part in key.split("."):
        if isinstance(node, dict) and part not in node and isinstance(node.get("init_args"), dict):
            node = node["init_args"]
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
