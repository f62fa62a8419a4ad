"""The training images of each class: a line before training that says when they are imbalanced, and TensorBoard's
TEXT tab."""

from lightning.pytorch import Callback, LightningModule, Trainer

from datamodules.names import shown_name
from loggers.media import log_text

IMBALANCED = 2  # the largest class at least this many times the smallest: the line says so


def class_counts(trainer: Trainer) -> dict[str, int] | None:
    """The training images of each class, by class name (the datamodule's ``class_counts``); None where unknown."""
    data = trainer.datamodule
    counts = getattr(data, "class_counts", None)
    if counts is None:
        return None
    names = getattr(data, "class_names", None) or [str(i) for i in range(len(counts))]
    return {shown_name(str(name)): count for name, count in zip(names, counts, strict=True)}


def counts_line(counts: dict[str, int]) -> str:
    """``10 classes, 50 to 5,000 training images each (imbalanced 100x: see ...)``."""
    low, high = min(counts.values()), max(counts.values())
    each = f"{low:,}" if low == high else f"{low:,} to {high:,}"
    line = f"{len(counts)} classes, {each} training images each"
    if high >= IMBALANCED * low:
        ratio = f"{high / low:.3g}x" if low else f"{sum(c == 0 for c in counts.values())} class(es) without any"
        line += f" (imbalanced {ratio}: see --model.class_weights and --data.sampler)"
    return line


class ClassCounts(Callback):
    """When training starts, print how many training images each class has (``counts_line``), and show them in
    TensorBoard's TEXT tab as ``data/class_counts``; ``hparams.yaml`` keeps them (``callbacks.RunHyperparameters``).

    The counts are those of the whole training part, after the validation part is taken out (on every DDP
    process, not its share).
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        counts = class_counts(trainer)
        if counts is None or not trainer.is_global_zero:
            return
        print(counts_line(counts), flush=True)
        rows = "\n".join(f"| {name} | {count:,} |" for name, count in counts.items())
        log_text(trainer, "data/class_counts", f"| class | training images |\n| --- | ---: |\n{rows}")
