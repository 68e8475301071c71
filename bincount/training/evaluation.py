"""Test-set evaluation: the numbers written to ``evaluation.json`` (docs/design.md §3)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bincount.data.labels import COUNTS, NUM_CLASSES

EVALUATION_FILE = "evaluation.json"


def evaluate_counts(true_counts: Sequence[int], predicted_counts: Sequence[int]) -> dict[str, Any]:
    """Accuracy, RMSE and MAE (in objects), per-class accuracy and the 5x5 confusion matrix.

    ``confusion_matrix[i][j]`` is the number of photos with ``i + 1`` objects predicted as ``j + 1``.
    A class with no test photo has per-class accuracy ``None``.
    """
    if len(true_counts) != len(predicted_counts):
        raise ValueError(f"{len(true_counts)} true counts but {len(predicted_counts)} predictions")
    if not true_counts:
        raise ValueError("cannot evaluate on an empty test set")
    confusion = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for t, p in zip(true_counts, predicted_counts, strict=True):
        confusion[t - COUNTS[0]][p - COUNTS[0]] += 1
    n = len(true_counts)
    errors = [p - t for t, p in zip(true_counts, predicted_counts, strict=True)]
    per_class = {
        str(count): (row[i] / sum(row) if sum(row) else None)
        for i, (count, row) in enumerate(zip(COUNTS, confusion, strict=True))
    }
    return {
        "accuracy": sum(confusion[i][i] for i in range(NUM_CLASSES)) / n,
        "rmse": math.sqrt(sum(e * e for e in errors) / n),
        "mae": sum(abs(e) for e in errors) / n,
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion,
        "n_test": n,
    }


def write_evaluation(report: dict[str, object], output_dir: str | Path) -> Path:
    path = Path(output_dir) / EVALUATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path
