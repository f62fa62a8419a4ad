"""The model summary before training, of the network alone: no metrics or loss modules beside its layers."""

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count
from torch import nn
from torchmetrics import Metric, MetricCollection


class NetworkModules(ModelSummary):
    """Lightning's model summary without the model's metrics and its loss module (``criterion``).

    Those hold no weights and take no part in ``forward``: in a summary of the MLP they were 9 rows
    of bookkeeping beside the 2 of the network.
    """

    @property
    def named_modules(self) -> list[tuple[str, nn.Module]]:
        criterion = getattr(self._model, "criterion", None)
        return [
            (name, module)
            for name, module in super().named_modules
            if not isinstance(module, (Metric, MetricCollection)) and module is not criterion
        ]


class NetworkSummary(RichModelSummary):
    """Lightning's ``RichModelSummary`` of the network's layers, narrower, with the totals on one line.

    Args:
        max_depth: Depth of the layers listed (1: the model's direct children).
        **summarize_kwargs: Options of Lightning's ``RichModelSummary`` (``header_style``).
    """

    def _summary(self, trainer: Trainer, pl_module: LightningModule) -> ModelSummary:
        return NetworkModules(pl_module, max_depth=self._max_depth)

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import box, get_console
        from rich.table import Table

        # Without borders, padding or the Mode column (train or eval, "train" for every layer here), the table
        # of a CNN on 28x28 images takes 75 columns: it fits a terminal of 80 without cutting the sizes.
        columns = [(name, values) for name, values in summary_data if name != "Mode"]
        style = summarize_kwargs.get("header_style", "bold magenta")
        table = Table(header_style=style, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        right = {"Params", "Params per Device", "FLOPs", "In sizes", "Out sizes"}
        for name, _ in columns:
            table.add_column(name, justify="right" if name in right else "left", no_wrap=True)
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        frozen = total_parameters - trainable_parameters
        console.print(
            f"Params: {get_human_readable_count(trainable_parameters)} trainable"
            + (f", {get_human_readable_count(frozen)} frozen" if frozen else "")
            + f" ({get_formatted_model_size(model_size)} MB)",
            highlight=False,
        )
