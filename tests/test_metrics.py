"""Metric lines and the regexes SageMaker (and our state machine) read them with; evaluation numbers."""

from __future__ import annotations

import math
import re

import pytest

from bincount.evaluation import evaluate_counts
from bincount.metrics import METRIC_NAMES, format_metric, metric_definitions, parse_metrics


@pytest.mark.parametrize("value", [1.4525, 0.34, 0.0, 12.0, 3.5e-07, 123456789.0])
def test_every_metric_line_reads_back_with_its_definition(value) -> None:
    for definition in metric_definitions():
        line = f"2026-11-24 02:19:57,044 INFO bincount.train: {format_metric(definition['Name'], value)}"
        match = re.search(definition["Regex"], line)
        assert match, (definition, line)
        assert math.isclose(float(match.group(1)), value, rel_tol=1e-5)


def test_regexes_do_not_confuse_similar_names() -> None:
    log = (
        "train:loss=9.0\nvalid:loss=1.5\nvalid:accuracy=0.25\ntest:accuracy=0.5\ntest:rmse=1.1\n"
        "xvalid:loss=7\nrule:Overfit=1\nrule:OverfitX=1\nxrule:Overfit=1\n"
        "INFO bincount.diagnostics: rule:ClassImbalance=0\nprofile:images_per_second=123.5\n"
    )
    parsed = parse_metrics(log)
    assert {k: v for k, v in parsed.items() if v} == {
        "train:loss": [9.0],
        "valid:loss": [1.5],
        "valid:accuracy": [0.25],
        "test:accuracy": [0.5],
        "test:rmse": [1.1],
        "rule:Overfit": [1.0],
        "rule:ClassImbalance": [0.0],
        "profile:images_per_second": [123.5],
    }


def test_regexes_do_not_read_a_name_inside_a_longer_one() -> None:
    log = "xvalid:loss=9.0\nmy_valid:loss=8.0\nvalid:lossy=7.0\n12valid:loss=6.0\nINFO bincount.train: valid:loss=1.5\n"
    assert parse_metrics(log)["valid:loss"] == [1.5]
    assert parse_metrics("valid:loss=2.25\n")["valid:loss"] == [2.25]  # at the start of a line too


def test_regexes_are_plain_with_the_value_as_their_only_group() -> None:
    # SageMaker documents no lookaround or non-capturing groups; it reads the value from the capture group.
    for definition in metric_definitions():
        assert "(?" not in definition["Regex"], definition
        assert re.compile(definition["Regex"]).groups == 1, definition
    # \b alone separates names only while no name ends another after a ":" (or any other non-word character).
    for name in METRIC_NAMES:
        for other in METRIC_NAMES:
            tail = other.removesuffix(name)
            assert other == name or not other.endswith(name) or tail[-1:].isalnum() or tail[-1:] == "_", (name, other)


def test_definitions_cover_the_contract_names() -> None:
    names = {d["Name"] for d in metric_definitions()}
    assert {"valid:loss", "valid:accuracy", "test:accuracy", "test:rmse"} <= names == set(METRIC_NAMES)


def test_format_refuses_unknown_names_and_nan() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        format_metric("valid:f1", 0.5)
    with pytest.raises(ValueError, match="not finite"):
        format_metric("valid:loss", float("nan"))


def test_evaluation_numbers() -> None:
    report = evaluate_counts([1, 2, 3, 3, 5], [1, 3, 3, 1, 5])
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["mae"] == pytest.approx((0 + 1 + 0 + 2 + 0) / 5)
    assert report["rmse"] == pytest.approx(math.sqrt((1 + 4) / 5))
    assert report["per_class_accuracy"] == {"1": 1.0, "2": 0.0, "3": 0.5, "4": None, "5": 1.0}
    assert report["confusion_matrix"][2] == [1, 0, 1, 0, 0]  # two photos with 3 objects: one as 1, one as 3
    assert report["n_test"] == 5
