"""Keep Lightning's messages that tell a user of this project nothing out of the output."""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

# The loggers Lightning's info messages come from (its rank_zero_info, the LR finder, checkpoint restores).
LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.tuner.lr_finder",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
    "lightning.fabric.utilities.seed",
)

# Printed by Lightning on every run: the default callbacks it skipped, the hardware it did not find or
# use (scripts/fit.py prints one line of what the run uses instead), advertisements, internal steps, the end.
STARTUP_NOISE = (
    r"^Trainer already configured with model summary callbacks",
    r"^(GPU|TPU|HPU) available: ",
    r"^💡 Tip: ",
    r"^Loading `train_dataloader` to estimate number of stepping batches",
    r"^(\[rank: \d+\] )?Seed set to -?\d+",  # the start line says the seed
    # The end of a run as planned; printed in the middle of the live bar, it made rich draw the last epoch twice.
    r"^`Trainer.fit` stopped: `max_(epochs|steps)=\d+` reached",
    # The tuners' own temporary checkpoints (the LR finder's restored once inside the search and announced again).
    r"checkpoint (path )?at .*\.(lr_find|scale_batch_size)_[0-9a-f-]+\.ckpt$",
    # The model's own callback (EMAWeights of --model.ema_decay) made again for the test after training.
    r"^The following callbacks returned in `LightningModule.configure_callbacks` will override",
)


# Printed each time a checkpoint's weights are loaded to validate or test it: the summary says which one.
CHECKPOINT_LOADED = (
    r"^Restoring states from the checkpoint",
    r"^Restored all states from the checkpoint",
    r"^Loaded model weights from",
)


class DropMessages(logging.Filter):
    """A logging filter that drops the records whose message matches one of ``patterns`` (regular expressions)."""

    def __init__(self, *patterns: str) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{pattern})" for pattern in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def drop_lightning_messages(*patterns: str) -> DropMessages:
    """Drop Lightning's messages that match ``patterns`` from now on; returns the filter (to remove it)."""
    dropped = DropMessages(*patterns)
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(dropped)
    return dropped


@contextmanager
def lightning_messages_dropped(*patterns: str) -> Iterator[None]:
    """Drop Lightning's messages that match ``patterns`` within the ``with`` block."""
    dropped = drop_lightning_messages(*patterns)
    try:
        yield
    finally:
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).removeFilter(dropped)
