"""The per-class report of a test: scikit-learn's ``classification_report`` and fastai's ``most_confused``, both
from the test's confusion matrix (which torchmetrics sums exactly over DDP processes)."""

import numpy as np
from torch import Tensor

MOST_CONFUSED = 5  # the largest off-diagonal cells shown
SHOWN_CLASSES = 20  # the summary prints the report for at most this many classes (the file always has it)


def predictions_of(matrix: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) class pairs that the confusion ``matrix`` (true classes in rows) counts.

    scikit-learn's report takes predictions, not a matrix; these give the same figures as the test's own.
    """
    counts = matrix.cpu().numpy()
    k = len(counts)
    true, predicted = np.divmod(np.arange(k * k), k)
    flat = counts.reshape(-1)
    return np.repeat(true, flat), np.repeat(predicted, flat)


def classification_report(matrix: Tensor, names: list[str]) -> tuple[str, dict]:
    """scikit-learn's ``classification_report`` of the predictions that ``matrix`` counts: as text and as a dict
    (precision, recall, F1 and support of each class; accuracy; macro and weighted averages)."""
    from sklearn.metrics import classification_report as report  # here: scikit-learn takes seconds to import

    true, predicted = predictions_of(matrix)
    options = {"labels": list(range(len(names))), "target_names": names, "zero_division": 0}
    return report(true, predicted, digits=4, **options), report(true, predicted, output_dict=True, **options)


def most_confused(matrix: Tensor, names: list[str], top: int = MOST_CONFUSED) -> list[str]:
    """fastai's ``most_confused``: the ``top`` largest off-diagonal cells of ``matrix`` (none that is 0), as
    ``true -> predicted: count``, the largest first (ties in the order of the true, then predicted, class)."""
    counts = matrix.cpu().numpy().copy()
    np.fill_diagonal(counts, 0)
    cells = sorted(np.argwhere(counts > 0).tolist(), key=lambda cell: -counts[tuple(cell)])[:top]
    return [f"{names[true]} -> {names[predicted]}: {int(counts[true, predicted])}" for true, predicted in cells]
