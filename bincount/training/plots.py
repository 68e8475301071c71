"""Training plots as PNG: loss curves and the test confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training instances have no display
import matplotlib.pyplot as plt

from bincount.data.labels import COUNTS

LOSS_PLOT = "loss_curves.png"
CONFUSION_PLOT = "confusion_matrix.png"


def plot_losses(train_loss: Sequence[float], valid_loss: Sequence[float], output_dir: str | Path) -> Path:
    """Train and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = range(1, len(train_loss) + 1)
    ax.plot(epochs, train_loss, marker="o", label="train")
    ax.plot(range(1, len(valid_loss) + 1), valid_loss, marker="o", label="valid")
    ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss per epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, Path(output_dir) / LOSS_PLOT)


def plot_confusion(confusion: Sequence[Sequence[int]], output_dir: str | Path) -> Path:
    """Rows: true count; columns: predicted count."""
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    image = ax.imshow(confusion, cmap="Blues")
    labels = [str(c) for c in COUNTS]
    ax.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted count",
        ylabel="true count",
        title="Test confusion matrix",
    )
    peak = max((max(row) for row in confusion), default=0)
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    fig.colorbar(image, ax=ax)
    return _save(fig, Path(output_dir) / CONFUSION_PLOT)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
