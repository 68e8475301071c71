"""The review policy: temperature scaling and the threshold chosen on validation (bincount.serving.review), written by
the real training job into the artifact and applied by the handler at serving (docs/design.md §4, §11)."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch

from bincount.data.transforms import eval_transform
from bincount.serving.review import (
    DEFAULT_THRESHOLD,
    REVIEW_ALL,
    REVIEW_FILE,
    ReviewPolicy,
    calibrate,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    nll,
)
from bincount.training.evaluation import EVALUATION_FILE
from bincount.training.report import REPORT_FILE
from tests.support.serving import import_handler, photo_bytes

handler = import_handler("endpoint_inference_review")


def _overconfident(n: int, seed: int = 3) -> tuple[list[list[float]], list[int]]:
    """Logits of a 5-class model right about 60% of the time but sure of itself far beyond that."""
    rng = random.Random(seed)
    logits, targets = [], []
    for _ in range(n):
        target = rng.randrange(5)
        predicted = target if rng.random() < 0.6 else rng.randrange(5)
        row = [rng.gauss(0, 1) for _ in range(5)]
        row[predicted] += 8.0
        logits.append(row)
        targets.append(target)
    return logits, targets


def test_temperature_scaling_softens_an_overconfident_model_and_lowers_nll_and_ece() -> None:
    logits, targets = _overconfident(400)
    temperature = fit_temperature(logits, targets)
    assert temperature > 1.5
    assert nll(logits, targets, temperature) < nll(logits, targets, 1.0)
    # the optimum: a little either way is worse
    assert nll(logits, targets, temperature) <= min(nll(logits, targets, temperature * f) for f in (0.9, 1.1))
    policy, report = calibrate(logits[:200], targets[:200], logits[200:], targets[200:], target_accuracy=0.9)
    assert report["ece_after"] < report["ece_before"]
    assert policy.temperature == report["temperature"]


def test_threshold_is_the_lowest_at_which_accepted_answers_reach_the_target() -> None:
    confidence = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    correct = [True, True, True, True, False, True, False, False]
    # accepting down to 0.7: 4/4; 0.6: 4/5 = 0.8; 0.5: 5/6; 0.4: 5/7 = 0.714...
    assert choose_threshold(confidence, correct, 0.8, min_accepted=1) == 0.5
    assert choose_threshold(confidence, correct, 1.0, min_accepted=1) == 0.7
    assert choose_threshold(confidence, correct, 1.0, min_accepted=5) == REVIEW_ALL
    assert choose_threshold(confidence, correct, 0.6, min_accepted=1) == 0.3


def test_ties_are_accepted_or_refused_together() -> None:
    assert choose_threshold([0.9, 0.9, 0.8], [True, False, True], 0.6, min_accepted=1) == 0.8
    assert choose_threshold([0.9, 0.9], [True, False], 0.6, min_accepted=1) == REVIEW_ALL


def test_ece_of_a_perfectly_calibrated_set_is_zero_and_of_a_liar_is_large() -> None:
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.99] * 4, [False] * 4) == pytest.approx(0.99)


def test_policy_round_trips_and_an_artifact_without_one_gets_the_default(tmp_path: Path) -> None:
    assert ReviewPolicy.load(tmp_path) == ReviewPolicy(1.0, DEFAULT_THRESHOLD)
    ReviewPolicy(1.7, 0.42, 0.8, source="validation").save(tmp_path)
    assert ReviewPolicy.load(tmp_path) == ReviewPolicy(1.7, 0.42, 0.8, source="validation")
    (tmp_path / REVIEW_FILE).write_text('{"temperature": -1, "threshold": 0.5}')
    with pytest.raises(ValueError, match=REVIEW_FILE):
        ReviewPolicy.load(tmp_path)
    assert ReviewPolicy(threshold=REVIEW_ALL).needs_review(1.0)
    assert not ReviewPolicy(threshold=0.5).needs_review(0.5)
    assert ReviewPolicy(threshold=0.5).needs_review(0.4999)


# --- the real training job and the handler ---------------------------------------------------------------------------


def test_training_chooses_the_threshold_on_validation_and_reports_it(trained_job) -> None:
    stored = json.loads((trained_job.model_dir / REVIEW_FILE).read_text())
    assert stored["source"] == "validation" and stored["target_accuracy"] == 0.8
    review = json.loads((trained_job.output_dir / EVALUATION_FILE).read_text())["review"]
    assert review["threshold"] == stored["threshold"] and review["temperature"] == stored["temperature"]
    assert review["valid"]["n"] == 10 and review["test"]["n"] == 10
    test = review["test"]
    assert 0 <= test["accepted"] <= test["n"] and test["accepted_share"] == test["accepted"] / test["n"]
    assert review["review_all"] == (stored["threshold"] >= REVIEW_ALL)
    assert 0 <= review["ece_before"] <= 1 and 0 <= review["ece_after"] <= 1
    page = (trained_job.output_dir / REPORT_FILE).read_text()
    assert "<h2>Review</h2>" in page and "share of photos accepted" in page
    assert "review: temperature" in trained_job.log


def _artifact_with(model_dir: Path, out: Path, policy: ReviewPolicy | None) -> Path:
    shutil.copytree(model_dir, out)
    (out / REVIEW_FILE).unlink(missing_ok=True)
    if policy is not None:
        policy.save(out)
    return out


@pytest.mark.parametrize(("threshold", "flag"), [(0.0, False), (REVIEW_ALL, True)])
def test_the_handler_applies_the_artifacts_threshold(model_dir: Path, tmp_path: Path, threshold, flag) -> None:
    model = handler.model_fn(str(_artifact_with(model_dir, tmp_path / "m", ReviewPolicy(1.0, threshold))))
    answer = json.loads(handler.output_fn(handler.predict_fn(handler.input_fn(photo_bytes(1), "image/jpeg"), model)))
    assert answer["needs_review"] is flag


def test_the_handler_applies_the_temperature_and_defaults_without_review_json(model_dir: Path, tmp_path: Path) -> None:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("BINCOUNT_REFERENCE", "1")  # the exact fp32 path, to compare logits
    try:
        plain = handler.model_fn(str(_artifact_with(model_dir, tmp_path / "plain", None)))
        hot = handler.model_fn(str(_artifact_with(model_dir, tmp_path / "hot", ReviewPolicy(4.0, 0.3))))
        image = handler.input_fn(photo_bytes(2), "image/jpeg")
        with torch.inference_mode():
            logits = plain.network(eval_transform()(image).unsqueeze(0))[0]
        assert plain.review == ReviewPolicy()
        assert torch.allclose(handler.predict_fn(image, plain), torch.softmax(logits, 0), atol=1e-6)
        assert torch.allclose(handler.predict_fn(image, hot), torch.softmax(logits / 4.0, 0), atol=1e-6)
        answer = json.loads(handler.output_fn(handler.predict_fn(image, plain)))
        assert answer["needs_review"] is (answer["confidence"] < DEFAULT_THRESHOLD)
        assert math.isclose(sum(answer["probabilities"].values()), 1.0, abs_tol=1e-5)
    finally:
        monkey.undo()
