"""The benchmarks run end to end (small runs), so the scripts the README quotes cannot rot. They print ratios;
nothing here asserts a speed (the machine's load varies), only that every side ran."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bincount.paths import PROJECT_ROOT
from tests.support.serving import PHOTOS

ROOT = PROJECT_ROOT


def test_endpoint_latency_bench_measures_all_three_sides(model_dir: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for path in PHOTOS[:3]:
        shutil.copy(path, images)
    command = [sys.executable, str(ROOT / "bench" / "endpoint_latency.py"), "--model-dir", str(model_dir)]
    proc = subprocess.run(
        [*command, "--images", str(images), "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "3 requests per side, interleaved photo by photo" in out
    # No silent fallback: ours serves int8, the reference its exact fp32 path.
    assert "baseline: classic fp32 eager; ours: int8; reference: fp32 (reference mode: BINCOUNT_REFERENCE=1)" in out
    assert re.search(r"median \(ms\)\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+[\d.]+", out), out
    assert re.search(r"identical counts: [0-3]/3", out), out
    assert "per request, paired: median" in out


def test_profiler_overhead_bench_runs_both_sides() -> None:
    command = [sys.executable, str(ROOT / "bench" / "profiler_overhead.py")]
    proc = subprocess.run(
        [*command, "--images", "256", "--rounds", "1", "--epochs", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "one run = 2 epochs of 8 steps of 32" in proc.stdout
    assert re.search(r"overhead: [+-][\d.]+% of a 2-epoch run \(3 profiled steps\)", proc.stdout), proc.stdout


def test_extraction_throughput_bench_measures_photos_per_second(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in PHOTOS[:4]:
        shutil.copy(path, photos)
    command = [sys.executable, str(ROOT / "bench" / "extraction_throughput.py"), "--photos", str(photos)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for extra in (["--rounds", "1", "--workers", "0", "--batch-size", "4"], ["--rounds", "1", "--decode-only"]):
        proc = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=300, check=False, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout)
        assert result["photos"] == 4
        rate = result.get("photos_per_second", result.get("decode_photos_per_second_per_cpu"))
        assert rate > 0


def test_batch_throughput_bench_measures_both_sides(model_dir: Path) -> None:
    command = [sys.executable, str(ROOT / "bench" / "batch_throughput.py"), "--model-dir", str(model_dir)]
    proc = subprocess.run(
        [*command, "--limit", "4", "--rounds", "1", "--batch-size", "2", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "4 photos per pass, 1 rounds, batch size 2" in out
    assert re.search(r"median photos/s: one at a time [\d.]+, batched [\d.]+ \([\d.]+x\)", out), out
    assert "identical answers: 4/4" in out
