"""Metric log lines and the regexes that read them back: the one place both are defined (docs/design.md §3, §9).

Training scripts print ``name=value`` lines; SageMaker reads them with the ``MetricDefinitions`` below (the tuning
objective is ``valid:loss``), and the state machine's quality gate reads ``test:accuracy`` and the ``rule:<Name>``
results (1 = issues found so far, 0 = none) from the training job's final metrics.
"""

from __future__ import annotations

import math
import re

VALID_LOSS = "valid:loss"
VALID_ACCURACY = "valid:accuracy"
TEST_ACCURACY = "test:accuracy"
TEST_RMSE = "test:rmse"
TRAIN_LOSS = "train:loss"
IMAGES_PER_SECOND = "profile:images_per_second"
RULE_PREFIX = "rule:"
# The in-process training rules (bincount.training.diagnostics defines them; kept here so stacks need no torch).
RULE_NAMES: tuple[str, ...] = (
    "LossNotDecreasing",
    "Overfit",
    "VanishingGradient",
    "ExplodingTensor",
    "PoorWeightInitialization",
    "ClassImbalance",
)
RULE_METRICS: tuple[str, ...] = tuple(f"{RULE_PREFIX}{name}" for name in RULE_NAMES)

METRIC_NAMES: tuple[str, ...] = (
    TRAIN_LOSS,
    VALID_LOSS,
    VALID_ACCURACY,
    TEST_ACCURACY,
    TEST_RMSE,
    IMAGES_PER_SECOND,
    *RULE_METRICS,
)
TUNING_OBJECTIVE = VALID_LOSS

# The value as format_metric writes it (1.4525, 12, 3.5e-07, 1e+06), in the plainest regex dialect: character
# classes and repetition only, no lookaround and no non-capturing groups, which SageMaker does not document.
_NUMBER = r"([-+]?[0-9]*[.]?[0-9]+[eE]?[-+]?[0-9]*)"


def metric_regex(name: str) -> str:
    """The regex that reads ``name=value`` from a log line; its one capture group is the value.

    ``\b`` before the name (which starts with a letter) keeps ``valid:loss`` from matching inside ``xvalid:loss``;
    no metric name ends another after a ``:`` (``tests/unit/training/test_metrics.py`` makes sure), so ``\b`` is enough.
    """
    if not name[:1].isalpha():
        raise ValueError(f"metric names start with a letter: {name!r}")
    return rf"\b{re.escape(name)}={_NUMBER}"


def metric_definitions(names: tuple[str, ...] = METRIC_NAMES) -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions`` for the given metric names."""
    return [{"Name": name, "Regex": metric_regex(name)} for name in names]


def format_metric(name: str, value: float) -> str:
    """A metric log line, exactly ``name=value``."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    if not math.isfinite(value):
        raise ValueError(f"metric {name} is not finite: {value}")
    return f"{name}={value:.6g}"


def parse_metrics(log: str) -> dict[str, list[float]]:
    """Every value of every known metric in a log, in order of appearance."""
    return {name: [float(m) for m in re.findall(metric_regex(name), log)] for name in METRIC_NAMES}
