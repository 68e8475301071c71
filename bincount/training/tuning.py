"""Hyperparameter tuning: the search space and objective shared by the cloud tuning job and the local twin.

The cloud's HyperParameterTuningJob and the local twin's random search use the same ranges (the seed's: lr
1e-5..1e-1 logarithmic, eps 1e-9..1e-8, weight decay 1e-3..1e-1) and the same objective (minimise the last
``valid:loss`` a trial prints).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bincount.training.metrics import TUNING_OBJECTIVE, metric_regex

LINEAR = "Linear"
LOGARITHMIC = "Logarithmic"


@dataclass(frozen=True)
class ContinuousRange:
    """A SageMaker ``ContinuousParameterRange``."""

    name: str
    min_value: float
    max_value: float
    scaling: str = LINEAR

    def __post_init__(self) -> None:
        if self.scaling not in (LINEAR, LOGARITHMIC):
            raise ValueError(f"range {self.name}: scaling must be {LINEAR} or {LOGARITHMIC}, got {self.scaling!r}")
        if not self.min_value < self.max_value:
            raise ValueError(f"range {self.name}: min {self.min_value} must be below max {self.max_value}")
        if self.scaling == LOGARITHMIC and self.min_value <= 0:
            raise ValueError(f"range {self.name}: logarithmic scaling needs min > 0, got {self.min_value}")

    def sample(self, rng: random.Random) -> float:
        if self.scaling == LOGARITHMIC:
            return math.exp(rng.uniform(math.log(self.min_value), math.log(self.max_value)))
        return rng.uniform(self.min_value, self.max_value)

    def to_sagemaker(self) -> dict[str, str]:
        return {
            "Name": self.name,
            "MinValue": repr(self.min_value),
            "MaxValue": repr(self.max_value),
            "ScalingType": self.scaling,
        }


DEFAULT_RANGES: tuple[ContinuousRange, ...] = (
    ContinuousRange("lr", 1e-5, 1e-1, LOGARITHMIC),
    ContinuousRange("eps", 1e-9, 1e-8, LINEAR),
    ContinuousRange("weight-decay", 1e-3, 1e-1, LINEAR),
)

# Hyperparameters every trial and the final job get unchanged (the tuned ones are merged over these).
DEFAULT_STATIC: dict[str, str] = {"batch-size": "32", "epochs": "4", "pretrained": "true", "head": "linear"}


def sample_trials(
    n_trials: int, ranges: tuple[ContinuousRange, ...] = DEFAULT_RANGES, seed: int = 0
) -> list[dict[str, float]]:
    """``n_trials`` hyperparameter sets drawn at random (seeded) from the ranges."""
    rng = random.Random(seed)
    return [{r.name: r.sample(rng) for r in ranges} for _ in range(n_trials)]


def objective_from_log(log: str) -> float | None:
    """The tuning objective of a trial: the last ``valid:loss`` it printed (None if it printed none)."""
    values = re.findall(metric_regex(TUNING_OBJECTIVE), log)
    return float(values[-1]) if values else None


def best_trial(results: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The finished trial with the lowest objective.

    Raises:
        ValueError: no trial finished with an objective.
    """
    finished = [r for r in results if isinstance(r.get("objective"), (int, float))]
    if not finished:
        raise ValueError("no tuning trial finished with a valid:loss; see the trial logs")
    return min(finished, key=lambda r: float(r["objective"]))
