"""Which answers go to a person: temperature scaling, the review threshold and ``review.json`` (docs/design.md §4, §11).

Training fits a temperature on the validation logits (a 1-D search on the negative log-likelihood), then picks the
lowest confidence threshold at which the accepted validation answers reach a target accuracy, and stores both in the
artifact's ``review.json``. The handler divides the logits by the temperature and answers
``needs_review = confidence < threshold``. An artifact without ``review.json`` serves with temperature 1 and
:data:`DEFAULT_THRESHOLD`.

Pure Python (no torch): the handler, training and the tests share it, and it is cheap to reason about.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REVIEW_FILE = "review.json"
DEFAULT_THRESHOLD = 0.5
"""Review threshold of an artifact without ``review.json``: an answer less than even odds goes to a person."""
DEFAULT_TARGET_ACCURACY = 0.8
"""Default ``--review-target-accuracy``: the accuracy the accepted validation answers must reach."""
MIN_ACCEPTED = 5
"""A threshold must accept at least this many validation photos to count as reaching the target (fewer is noise)."""
REVIEW_ALL = 1.0
"""Threshold when no threshold reaches the target: every answer goes to a person."""
ECE_BINS = 15
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))


@dataclass(frozen=True)
class ReviewPolicy:
    """What the handler applies: ``softmax(logits / temperature)``, then ``needs_review = confidence < threshold``
    (every answer when ``threshold >= 1``)."""

    temperature: float = 1.0
    threshold: float = DEFAULT_THRESHOLD
    target_accuracy: float | None = None
    source: str = "default"

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in 0..1, got {self.threshold!r}")

    def needs_review(self, confidence: float) -> bool:
        return self.threshold >= REVIEW_ALL or confidence < self.threshold

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / REVIEW_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> ReviewPolicy:
        """The policy stored in ``model_dir``; the default one when the artifact has no ``review.json``.

        Raises:
            ValueError: the file exists but is not a valid policy (naming the file).
        """
        path = Path(model_dir) / REVIEW_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                temperature=float(data["temperature"]),
                threshold=float(data["threshold"]),
                target_accuracy=data.get("target_accuracy"),
                source=str(data.get("source", REVIEW_FILE)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a valid review policy: {e}") from e


def softmax(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    scaled = [x / temperature for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def nll(logits: Sequence[Sequence[float]], targets: Sequence[int], temperature: float) -> float:
    """Mean negative log-likelihood of the class indices ``targets`` under ``softmax(logits / temperature)``."""
    total = 0.0
    for row, target in zip(logits, targets, strict=True):
        scaled = [x / temperature for x in row]
        top = max(scaled)
        total += top + math.log(sum(math.exp(x - top) for x in scaled)) - scaled[target]
    return total / len(targets)


def fit_temperature(logits: Sequence[Sequence[float]], targets: Sequence[int], *, steps: int = 60) -> float:
    """The temperature that minimises the validation NLL: a golden-section search on log T in [0.05, 20]
    (the NLL is convex in 1/T, so unimodal in log T)."""
    if not targets:
        return 1.0
    lo, hi = _LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, targets, math.exp(a)), nll(logits, targets, math.exp(b))
    for _ in range(steps):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, targets, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, targets, math.exp(b))
    best = math.exp((lo + hi) / 2)
    return best if nll(logits, targets, best) <= nll(logits, targets, 1.0) else 1.0


def confidences(logits: Sequence[Sequence[float]], temperature: float) -> list[tuple[float, int]]:
    """(confidence, predicted class index) of each row."""
    out = []
    for row in logits:
        probs = softmax(row, temperature)
        best = max(range(len(probs)), key=probs.__getitem__)
        out.append((probs[best], best))
    return out


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by the bins' sizes."""
    if not confidence:
        return 0.0
    sums = [[0.0, 0.0, 0] for _ in range(bins)]
    for c, ok in zip(confidence, correct, strict=True):
        b = sums[min(bins - 1, int(c * bins))]
        b[0] += c
        b[1] += float(ok)
        b[2] += 1
    return sum(abs(acc - conf) for conf, acc, n in sums if n) / len(confidence)


def choose_threshold(
    confidence: Sequence[float], correct: Sequence[bool], target_accuracy: float, *, min_accepted: int = MIN_ACCEPTED
) -> float:
    """The lowest threshold at which the answers with ``confidence >= threshold`` (at least ``min_accepted`` of
    them) are right at least ``target_accuracy`` of the time; :data:`REVIEW_ALL` when none is."""
    ranked = sorted(zip(confidence, correct, strict=True), key=lambda pair: -pair[0])
    best = REVIEW_ALL
    right = 0
    for i, (c, ok) in enumerate(ranked, start=1):
        right += bool(ok)
        last_of_tie = i == len(ranked) or ranked[i][0] < c
        if last_of_tie and i >= min_accepted and right / i >= target_accuracy:
            best = c
    return best


def acceptance(
    confidence: Sequence[float], correct: Sequence[bool], policy: ReviewPolicy
) -> dict[str, float | int | None]:
    """How a policy splits a set of answers: the share accepted and the accuracy of the accepted ones."""
    accepted = [ok for c, ok in zip(confidence, correct, strict=True) if not policy.needs_review(c)]
    n = len(confidence)
    return {
        "n": n,
        "accepted": len(accepted),
        "accepted_share": len(accepted) / n if n else 0.0,
        "accepted_accuracy": (sum(accepted) / len(accepted)) if accepted else None,
        "accuracy": (sum(correct) / n) if n else None,
    }


def calibrate(
    valid_logits: Sequence[Sequence[float]],
    valid_targets: Sequence[int],
    test_logits: Sequence[Sequence[float]],
    test_targets: Sequence[int],
    *,
    target_accuracy: float = DEFAULT_TARGET_ACCURACY,
    min_accepted: int = MIN_ACCEPTED,
) -> tuple[ReviewPolicy, dict[str, Any]]:
    """Fit the temperature and choose the threshold on validation; report both sets before and after.

    Returns:
        The policy for ``review.json`` and the ``review`` section of ``evaluation.json``: temperature, threshold,
        target, ECE of the test answers before and after scaling, and the accepted share and accuracy of the
        validation and test answers.
    """
    temperature = fit_temperature(valid_logits, valid_targets)
    valid = confidences(valid_logits, temperature)
    valid_conf = [c for c, _ in valid]
    valid_ok = [p == t for (_, p), t in zip(valid, valid_targets, strict=True)]
    threshold = choose_threshold(valid_conf, valid_ok, target_accuracy, min_accepted=min_accepted)
    policy = ReviewPolicy(temperature, threshold, target_accuracy, source="validation")
    raw = confidences(test_logits, 1.0)
    test = confidences(test_logits, temperature)
    test_ok = [p == t for (_, p), t in zip(test, test_targets, strict=True)]
    report: dict[str, object] = {
        "temperature": temperature,
        "threshold": threshold,
        "target_accuracy": target_accuracy,
        "review_all": threshold >= REVIEW_ALL,
        "ece_before": expected_calibration_error([c for c, _ in raw], test_ok),
        "ece_after": expected_calibration_error([c for c, _ in test], test_ok),
        "valid_nll_before": nll(valid_logits, valid_targets, 1.0) if valid_targets else None,
        "valid_nll_after": nll(valid_logits, valid_targets, temperature) if valid_targets else None,
        "valid": acceptance(valid_conf, valid_ok, policy),
        "test": acceptance([c for c, _ in test], test_ok, policy),
    }
    return policy, report
