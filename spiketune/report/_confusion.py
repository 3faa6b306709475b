"""The confusion matrix of the experiment's best model on its held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spiketune.report._plotting import literal_text, new_figure, save_png

if TYPE_CHECKING:
    import numpy as np

    from spiketune.trial import Predictions


def confusion_matrix(
    labels: Sequence[int], predictions: Sequence[int], n_classes: int
) -> np.ndarray:
    """Counts ``[true class, predicted class]`` (rows: true, columns: predicted), int64."""
    import numpy as np

    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)),
              1)
    return matrix


@literal_text
def plot_confusion_matrix(
    predictions: Predictions, path: Path, title: str = "Best model"
) -> np.ndarray:
    """Draw the confusion matrix of ``predictions`` as a PNG; returns the matrix drawn.

    Cells are shaded by the fraction of the true class (row) and labelled with counts; the
    title gives the overall accuracy as a percentage and as ``correct/total``.
    """
    import numpy as np

    names = predictions.names
    k = len(names)
    matrix = confusion_matrix(predictions.labels, predictions.predictions, k)
    rows = matrix.sum(axis=1, keepdims=True)
    fraction = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    side = max(4.8, 0.3 * k + 2.4)
    fig = new_figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class", fraction=0.046, pad=0.04)
    font = 10 if k <= 10 else (8 if k <= 20 else 7)
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=font,
                        color="white" if fraction[i, j] > 0.55 else "black")
    rotate = k > 8 and max(len(n) for n in names) > 2
    ax.set_xticks(range(k), names, fontsize=font + 1, rotation=90 if rotate else 0)
    ax.set_yticks(range(k), names, fontsize=font + 1)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    accuracy = f"{correct / total:.1%}" if total else "n/a"
    ax.set_title(f"{title} on the {predictions.split} set\n"
                 f"accuracy {accuracy} ({correct}/{total})", fontsize=11)
    save_png(fig, path)
    return matrix
