"""The local twin's pipeline: the cloud state machine's steps on one machine, with the same code.

dataset -> features (the frozen backbone run once per photo, both views) -> tune (hpo.py trials on the cached
features, same ranges and objective as the cloud) -> train (train_model.py with the best hyperparameters) ->
quality gate (reported, not fatal) -> serve. Each training step is a separate process with
SageMaker's environment variables, like the jobs in the cloud.

Everything lands in one run folder. A finished step records the fingerprint of its inputs in ``state.json``; a
re-run reuses it while the fingerprint matches, and ``fresh=True`` starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bincount.data.channel import DataError, scan_channel
from bincount.data.sources import build_dataset
from bincount.training.jobs import run_job
from bincount.training.tuning import DEFAULT_RANGES, best_trial, objective_from_log, sample_trials

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
Progress = Callable[[str], None]
"""Where the progress lines go (one per step and trial)."""


@dataclass(frozen=True)
class TwinSettings:
    data: Path | None = None
    download: int | None = None
    trials: int = 3
    epochs: int = 2
    batch_size: int = 16
    pretrained: bool = False
    accuracy_floor: float = 0.5
    seed: int = 42
    cache_features: bool = True


@dataclass
class StepReport:
    name: str
    seconds: float
    reused: bool
    detail: str


@dataclass
class TwinResult:
    run_dir: Path
    channels: dict[str, Path]
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    model_dir: Path
    output_dir: Path
    evaluation: dict[str, Any]
    gate_passed: bool
    steps: list[StepReport] = field(default_factory=list)


class StepFailed(RuntimeError):
    """A pipeline step failed; the message says which and where its log is."""


class RunFolder:
    """The run folder and its record of finished steps."""

    def __init__(self, root: Path, *, fresh: bool = False, progress: Progress = log.info) -> None:
        self.root = root.resolve()
        self.progress = progress
        if fresh and self.root.exists():
            if not (self.root / STATE_FILE).exists():
                raise DataError(f"--fresh would delete {self.root}, which is not a bincount run folder")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / STATE_FILE
        self.state: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
        self._save()

    def _save(self) -> None:
        (self.root / STATE_FILE).write_text(json.dumps(self.state, indent=2, default=str) + "\n")

    def step(
        self,
        name: str,
        inputs: dict[str, Any],
        run: Callable[[], dict[str, Any]],
        describe: Callable[[dict], str],
        outputs: Callable[[dict], list[Path]] = lambda result: [],
    ) -> tuple[dict[str, Any], StepReport]:
        """Run a step, or reuse its recorded result when its inputs are unchanged and its outputs still exist."""
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
        recorded = self.state.get(name)
        start = time.perf_counter()
        if recorded and recorded.get("key") == key and all(p.exists() for p in outputs(recorded["result"])):
            result, reused = recorded["result"], True
        else:
            self.progress(f"  {name}: running ...")
            result, reused = run(), False
            self.state[name] = {"key": key, "result": result}
            self._save()
        report = StepReport(name, time.perf_counter() - start, reused, describe(result))
        self.progress(f"  {name}: {'reused' if reused else 'done'} in {report.seconds:.1f}s: {report.detail}")
        return result, report


def run_pipeline(
    settings: TwinSettings, run_dir: Path, *, fresh: bool = False, progress: Progress = log.info
) -> TwinResult:
    """Dataset, tuning, training and the quality gate; returns where everything is. ``progress`` gets one line per
    step and trial (the CLI prints them; by default they are logged)."""
    run = RunFolder(run_dir, fresh=fresh, progress=progress)
    reports: list[StepReport] = []

    dataset, report = run.step(
        "dataset",
        {"data": settings.data, "download": settings.download},
        lambda: {
            k: str(v)
            for k, v in build_dataset(run.root / "data", data=settings.data, download=settings.download).items()
        },
        _describe_dataset,
        lambda r: [Path(p) for p in r.values()],
    )
    reports.append(report)
    channels = {k: Path(v) for k, v in dataset.items()}

    static = {
        "epochs": settings.epochs,
        "batch-size": settings.batch_size,
        "pretrained": str(settings.pretrained).lower(),
        "seed": settings.seed,
    }
    upstream = run.state["dataset"]["key"]
    if settings.cache_features:
        features, report = run.step(
            "features",
            {"dataset": upstream, "static": static},
            lambda: _extract(channels, run.root / "features", static),
            lambda r: f"backbone run once: {r['images']} photos x 2 views",
            lambda r: [Path(r["dir"]) / "train.features.pt", Path(r["dir"]) / "valid.features.pt"],
        )
        reports.append(report)
        upstream = run.state["features"]["key"]
        job_channels = {"features": Path(features["dir"]), "test": channels["test"]}
    else:
        job_channels = channels

    tuning, report = run.step(
        "tune",
        {
            "upstream": upstream,
            "static": static,
            "trials": settings.trials,
            "ranges": [asdict(r) for r in DEFAULT_RANGES],
        },
        lambda: _tune(job_channels, run.root / "tuning", static, settings, progress),
        lambda r: f"{len(r['trials'])} trials, best valid:loss {r['best']['objective']:.4f}",
    )
    reports.append(report)

    hyperparameters = {**static, **tuning["best"]["hyperparameters"]}
    training, report = run.step(
        "train",
        {"tune": run.state["tune"]["key"], "hyperparameters": hyperparameters},
        lambda: _train(job_channels, run.root / "training", hyperparameters),
        lambda r: f"test accuracy {r['evaluation']['accuracy']:.3f} on {r['evaluation']['n_test']} photos",
        lambda r: [Path(r["model_dir"]) / "model.pth", Path(r["output_dir"]) / "evaluation.json"],
    )
    reports.append(report)

    accuracy = float(training["evaluation"]["accuracy"])
    passed = accuracy >= settings.accuracy_floor
    reports.append(
        StepReport(
            "gate",
            0.0,
            False,
            f"test accuracy {accuracy:.3f} {'>=' if passed else '<'} floor "
            f"{settings.accuracy_floor} -> {'PASS' if passed else 'FAIL'}",
        )
    )
    progress(f"  gate: {reports[-1].detail}" + ("" if passed else " (reported, not fatal, in the local twin)"))
    return TwinResult(
        run_dir=run.root,
        channels=channels,
        trials=tuning["trials"],
        best=tuning["best"],
        model_dir=Path(training["model_dir"]),
        output_dir=Path(training["output_dir"]),
        evaluation=training["evaluation"],
        gate_passed=passed,
        steps=reports,
    )


def _describe_dataset(result: dict[str, str]) -> str:
    sizes = {split: len(scan_channel(path)) for split, path in result.items()}
    return f"{sum(sizes.values())} photos ({', '.join(f'{k} {v}' for k, v in sizes.items())})"


def _extract(channels: dict[str, Path], job_dir: Path, static: dict[str, Any]) -> dict[str, Any]:
    """The feature-extraction job: the backbone's output for every train and valid photo, both views."""
    job = run_job("extract_features.py", {"train": channels["train"], "valid": channels["valid"]}, job_dir, static)
    if job.returncode != 0:
        raise StepFailed(f"feature extraction failed (exit {job.returncode}); log: {job_dir / 'job.log'}")
    images = sum(len(scan_channel(channels[c])) for c in ("train", "valid"))
    return {"dir": str(job.model_dir), "images": images}


def _tune(
    channels: dict[str, Path], tuning_dir: Path, static: dict[str, Any], settings: TwinSettings, progress: Progress
) -> dict:
    """Random search over the cloud's ranges; each trial is a run of hpo.py."""
    trial_channels = {k: v for k, v in channels.items() if k != "test"}
    results: list[dict[str, Any]] = []
    for i, tuned in enumerate(sample_trials(settings.trials, seed=settings.seed), start=1):
        job_dir = tuning_dir / f"trial-{i:02d}"
        start = time.perf_counter()
        job = run_job("hpo.py", trial_channels, job_dir, {**static, **tuned})
        objective = objective_from_log(job.log) if job.returncode == 0 else None
        results.append(
            {
                "trial": i,
                "hyperparameters": tuned,
                "objective": objective,
                "seconds": round(time.perf_counter() - start, 1),
                "log": str(job_dir / "job.log"),
            }
        )
        shown = f"valid:loss {objective:.4f}" if objective is not None else f"FAILED (exit {job.returncode})"
        progress(
            f"    trial {i}/{settings.trials}: lr {tuned['lr']:.2e} eps {tuned['eps']:.2e} "
            f"weight-decay {tuned['weight-decay']:.2e} -> {shown} ({results[-1]['seconds']}s)"
        )
    try:
        best = best_trial(results)
    except ValueError as e:
        raise StepFailed(f"tuning: {e} (under {tuning_dir})") from e
    summary = {"trials": results, "best": best}
    (tuning_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _train(channels: dict[str, Path], job_dir: Path, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    job = run_job("train_model.py", channels, job_dir, hyperparameters)
    if job.returncode != 0:
        raise StepFailed(f"training failed (exit {job.returncode}); log: {job_dir / 'job.log'}")
    evaluation = json.loads((job.output_dir / "evaluation.json").read_text())
    return {"model_dir": str(job.model_dir), "output_dir": str(job.output_dir), "evaluation": evaluation}
