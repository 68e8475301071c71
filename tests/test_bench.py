"""The endpoint benchmark runs end to end (a small run: 3 photos, 1 round), so the script the README quotes cannot
rot. It prints ratios; nothing here asserts a speed (the machine's load varies), only that every side ran."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.serving_helpers import PHOTOS

ROOT = Path(__file__).resolve().parent.parent


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
    assert "baseline: classic fp32 eager; ours: fast int8; reference: reference fp32" in out  # no silent fallback
    assert re.search(r"median \(ms\)\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+[\d.]+", out), out
    assert re.search(r"identical counts: [0-3]/3", out), out
    assert "per request, paired: median" in out
