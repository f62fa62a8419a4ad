"""The run's configuration, saved into its folder without ever overwriting another run's."""

from pathlib import Path

from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback


def free_name(folder: Path, stem: str) -> Path:
    """``folder/STEM-1.yaml``, or the first of ``STEM-2.yaml``, ``STEM-3.yaml``, ... not taken yet."""
    number = 1
    while (folder / f"{stem}-{number}.yaml").exists():
        number += 1
    return folder / f"{stem}-{number}.yaml"


class SaveRunConfig(SaveConfigCallback):
    """Writes the full configuration as ``config.yaml`` into the run folder, for ``--config`` to repeat the run.

    The file is created exclusively: a folder that holds another run's ``config.yaml`` stops the run
    before anything is trained, so no two runs share a folder. A resumed run (``--ckpt_path``)
    continues in the folder of its checkpoint; its configuration goes to ``config-resume-N.yaml``
    beside the original. The run's own name and folder (``--name``, the logger's version) are left out:
    ``--config`` with the file repeats the run in a new folder, and ``--ckpt_path last`` with it
    resumes this one (found where the file is).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    @property
    def resuming(self) -> bool:
        """Whether the run resumes from a checkpoint (the CLI's ``--ckpt_path``)."""
        return bool(self.config.get("ckpt_path"))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        # Asked on every rank: log_dir is a collective call (rank 0's folder, broadcast).
        self.folder = folder = Path(trainer.log_dir or trainer.default_root_dir)
        taken = trainer.is_global_zero and (folder / self.config_filename).exists() and not self.resuming
        if trainer.strategy.broadcast(taken):
            raise MisconfigurationException(
                f"{folder} holds another run (its {self.config_filename}): give this run a folder of its own "
                "(--name, --trainer.default_root_dir, or keep the default logger, which makes a folder per run), "
                f"or resume that run with --ckpt_path {folder}"
            )
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = self.folder
        path = folder / self.config_filename
        if self.resuming and path.exists():
            path = free_name(folder, f"{path.stem}-resume")
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "x") as file:  # "x": another run that got here first keeps its file
            file.write(self.parser.dump(self.repeatable(), skip_none=False))

    def repeatable(self) -> Namespace:
        """The configuration without this run's name and the logger's version that names its folder."""
        config = self.config.clone()
        if config.get("name"):
            config.name = None
        logger = config.trainer.get("logger")
        for each in logger if isinstance(logger, list) else [logger]:
            init_args = getattr(each, "init_args", None)
            if isinstance(init_args, Namespace) and init_args.get("version") == self.folder.name:
                init_args.version = None
        return config
