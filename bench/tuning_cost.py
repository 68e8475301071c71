"""Benchmark: a tuning trial the classic way (the backbone runs every epoch) against ours (cached features).

Both trials run the real ``training/hpo.py`` as SageMaker would, on the same photos, epochs and seed; ours reads the
features that ``training/extract_features.py`` wrote once. Prints, side by side from this one run: wall time,
training-loop time, backbone forward passes and validation loss, and the ratios; then the backbone compute of a
whole tuning job (extraction amortised over the trials).

    .venv/bin/python bench/tuning_cost.py                 # the 50 vendored photos, 4 epochs, 6 trials
    .venv/bin/python bench/tuning_cost.py --data DIR      # a folder in the channel layout
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from bincount.data.manifest import SPLITS
from bincount.data.sample import sample_dataset
from bincount.training.jobs import JobResult, run_job

LOOP = re.compile(r"training loop: \d+ epochs in ([0-9.]+)s; backbone forward passes while training: (\d+) images")
EXTRACT = re.compile(r"backbone forward passes: (\d+) images")
VALID_LOSS = re.compile(r"valid:loss=([0-9.eE+-]+)")


def timed(script: str, channels: dict[str, Path], job_dir: Path, hp: dict) -> tuple[JobResult, float]:
    start = time.perf_counter()
    job = run_job(script, channels, job_dir, hp)
    if job.returncode != 0:
        raise SystemExit(f"{script} failed:\n{job.log[-3000:]}")
    return job, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="channel-layout folder (default: the vendored photos)")
    p.add_argument("--epochs", type=int, default=4, help="epochs per trial (default: 4, the classic recipe)")
    p.add_argument("--trials", type=int, default=6, help="trials of a tuning job, to amortise extraction (default: 6)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--pretrained", default="false", help="true needs internet (default: false)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bincount-bench-") as tmp:
        work = Path(tmp)
        channels = {s: args.data / s for s in SPLITS} if args.data else sample_dataset(work / "data")
        trial_channels = {"train": channels["train"], "valid": channels["valid"]}
        hp = {
            "epochs": args.epochs,
            "batch-size": args.batch_size,
            "pretrained": args.pretrained,
            "seed": 1,
            "lr": 1e-4,
            "workers": 2,
        }

        extract, extract_s = timed("extract_features.py", trial_channels, work / "extract", hp)
        classic, classic_s = timed("hpo.py", trial_channels, work / "classic", hp)
        cached, cached_s = timed("hpo.py", {"features": extract.model_dir}, work / "cached", hp)

    extract_passes = sum(int(n) for n in EXTRACT.findall(extract.log))
    ((classic_loop, classic_passes),) = [(float(a), int(b)) for a, b in LOOP.findall(classic.log)]
    ((cached_loop, cached_passes),) = [(float(a), int(b)) for a, b in LOOP.findall(cached.log)]
    classic_loss = [float(v) for v in VALID_LOSS.findall(classic.log)]
    cached_loss = [float(v) for v in VALID_LOSS.findall(cached.log)]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:,.1f}x" if b else "inf (ours: 0)"

    print(f"\nOne tuning trial, {args.epochs} epochs, same photos and seed (hpo.py as SageMaker runs it)\n")
    print(f"{'':34}{'classic':>12}{'ours (cached)':>16}{'classic / ours':>17}")
    print(f"{'wall time per trial (s)':34}{classic_s:>12.1f}{cached_s:>16.1f}{ratio(classic_s, cached_s):>17}")
    print(f"{'training loop (s)':34}{classic_loop:>12.2f}{cached_loop:>16.2f}{ratio(classic_loop, cached_loop):>17}")
    passes = ratio(classic_passes, cached_passes)
    print(f"{'backbone forward passes':34}{classic_passes:>12}{cached_passes:>16}{passes:>17}")
    print(
        f"{'final valid:loss':34}{classic_loss[-1]:>12.4f}{cached_loss[-1]:>16.4f}"
        f"{abs(classic_loss[-1] - cached_loss[-1]) / classic_loss[-1]:>16.2%} apart"
    )
    per_trial = (extract_passes / args.trials) + cached_passes
    print(f"\nOne-off extraction: {extract_passes} backbone passes (train + valid, 2 views) in {extract_s:.1f}s.")
    print(
        f"A tuning job of {args.trials} trials: classic {classic_passes * args.trials} backbone passes, ours "
        f"{extract_passes + cached_passes * args.trials} -> {per_trial:.0f} per trial amortised, "
        f"{ratio(classic_passes, per_trial)} less backbone compute per trial."
    )
    print(f"valid:loss per epoch, classic: {classic_loss[:-1]}\n                   ours:    {cached_loss[:-1]}")


if __name__ == "__main__":
    main()
