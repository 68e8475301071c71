"""Run a training entry point locally the way SageMaker runs it: a separate process, SM_* variables, and
hyperparameters as ``--name value`` options. Used by the local twin, the CLI and the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bincount.paths import TRAINING_DIR


@dataclass(frozen=True)
class JobResult:
    returncode: int
    log: str
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path


def sagemaker_env(
    channels: Mapping[str, Path],
    model_dir: Path,
    output_dir: Path,
    *,
    hosts: tuple[str, ...] = ("algo-1",),
    current_host: str = "algo-1",
) -> dict[str, str]:
    """The SM_* variables a SageMaker training container sets."""
    env = {f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()}
    env.update(
        SM_MODEL_DIR=str(model_dir),
        SM_OUTPUT_DATA_DIR=str(output_dir),
        SM_HOSTS=json.dumps(list(hosts)),
        SM_CURRENT_HOST=current_host,
        SM_CHANNELS=json.dumps(sorted(channels)),
    )
    return env


def hyperparameter_args(hyperparameters: Mapping[str, object]) -> list[str]:
    """``{"weight-decay": 0.01}`` -> ``["--weight-decay", "0.01"]`` (SageMaker passes every value as a string)."""
    args: list[str] = []
    for name, value in hyperparameters.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += [f"--{name}", text]
    return args


def run_job(
    script: str,
    channels: Mapping[str, Path],
    job_dir: Path,
    hyperparameters: Mapping[str, object],
    *,
    extra_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> JobResult:
    """Run ``training/<script>`` in a child process; its log goes to ``job_dir/job.log`` and is returned."""
    model_dir, output_dir, checkpoint_dir = job_dir / "model", job_dir / "output", job_dir / "checkpoints"
    for d in (model_dir, output_dir):
        d.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **sagemaker_env(channels, model_dir, output_dir), "PYTHONUNBUFFERED": "1"}
    env.update(extra_env or {})
    command = [
        sys.executable,
        str(TRAINING_DIR / script),
        *hyperparameter_args(hyperparameters),
        "--checkpoint-dir",
        str(checkpoint_dir),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    log = proc.stdout + proc.stderr
    (job_dir / "job.log").write_text(log, encoding="utf-8")
    return JobResult(proc.returncode, log, model_dir, output_dir, checkpoint_dir)
