"""The command line's own spellings: short flags for the most used Trainer options, and the default classes."""

from cli.config_files import config_files, read_yaml

SHORT_FLAGS = {
    "--accelerator": "--trainer.accelerator",
    "--devices": "--trainer.devices",
    "--strategy": "--trainer.strategy",
    "--num_nodes": "--trainer.num_nodes",
    "--precision": "--trainer.precision",
    "--max_epochs": "--trainer.max_epochs",
    "--seed": "--seed_everything",
    "--gradient_clip_val": "--trainer.gradient_clip_val",
    "--detect_anomaly": "--trainer.detect_anomaly",
}


# The classes a user can choose by name alone (``--model CNN``); any other by its import path.
BUILT_IN = {
    "model": ["MLP", "CNN", "ResNet9", "Pretrained"],
    "data": ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "Digits", "ImageFolder"],
}


def expand_short_flags(args: list[str]) -> list[str]:
    """Rewrite the short flags (``--devices 2``, ``--precision=16-mixed``) to their full names."""
    expanded = []
    for arg in args:
        name, equals, value = arg.partition("=")
        expanded.append(SHORT_FLAGS[name] + equals + value if name in SHORT_FLAGS else arg)
    return expanded


def given(args: list[str], option: str) -> bool:
    """Whether ``args`` give ``option`` (``--name X`` or ``--name=X``) on the command line itself."""
    return any(arg.split("=", 1)[0] == option for arg in args)


def with_default_classes(args: list[str]) -> list[str]:
    """``args`` with ``--model=models.MLP`` and ``--data=datamodules.MNIST`` first, where they choose no class.

    Not parser defaults: jsonargparse keeps a default class's option values when another class is
    chosen (jsonargparse issue 460), so every option that Airbench94 shares with the MLP took the MLP's
    default (lr 0.001 in place of 11.5) and its recipe did not learn.
    """
    defaults = {"model": "models.MLP", "data": "datamodules.MNIST"}
    missing = [key for key in defaults if not chooses_class(args, key)]
    return [f"--{key}={defaults[key]}" for key in missing] + args


def chooses_class(args: list[str], key: str) -> bool:
    """Whether ``args`` choose the class of ``key`` (model or data): by ``--KEY``, or in a ``--config`` file."""
    if given(args, f"--{key}") or given(args, f"--{key}.class_path"):
        return True
    for path in config_files(args):
        node = read_yaml(path)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) or (isinstance(value, dict) and "class_path" in value):
            return True
    return False
