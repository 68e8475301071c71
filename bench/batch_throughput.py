"""Benchmark: ``bincount batch --model`` photos per second, batched against one photo at a time, in one run.

- one at a time: each photo through the handler's ``input_fn -> predict_fn -> output_fn``, as ``bincount serve`` answers
  one request (:meth:`bincount.serving.batch.LocalCounter.count_one`).
- batched: :meth:`bincount.serving.batch.LocalCounter.count`, decoding and transforming in a thread pool while the
  network runs batches of ``--batch-size``.

The same counter (one ``model_fn``, the same path and threads) runs both; the sides take turns, round by round, so
background load falls on both alike. It prints the photos per second of each side per round, the medians, the
ratio, and how many answers agree.

    .venv/bin/python bench/batch_throughput.py                 # trains a (random-init) artifact first
    .venv/bin/python bench/batch_throughput.py --model-dir DIR --images DIR --rounds 3 --batch-size 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _train(work: Path) -> Path:
    from bincount.data.sample import sample_dataset
    from bincount.training.jobs import run_job

    print("no --model-dir: training a random-init artifact with training/train_model.py (about a minute or two)")
    hp = {"epochs": 1, "batch-size": 8, "pretrained": "false", "workers": 0, "seed": 7}
    job = run_job("train_model.py", sample_dataset(work / "data"), work / "job", hp)
    if job.returncode != 0:
        raise SystemExit(f"training failed:\n{job.log[-3000:]}")
    return job.model_dir


def measure(model_dir: Path, images: list[Path], rounds: int, batch_size: int, workers: int) -> None:
    from bincount.serving.batch import LocalCounter

    counter = LocalCounter(model_dir, batch_size=batch_size, workers=workers)
    import torch

    print(
        f"{len(images)} photos per pass, {rounds} rounds, batch size {batch_size}, {workers} decoding threads, "
        f"serving path {counter.model.path}, {torch.get_num_threads()} torch threads"
    )
    counter.count_one(images[0])  # warm-up of both paths
    list(counter.count(images[:batch_size]))
    rates: dict[str, list[float]] = {"one at a time": [], "batched": []}
    answers: dict[str, list] = {}
    for round_index in range(rounds):
        for side in rates:
            start = time.perf_counter()
            rows = [counter.count_one(p) for p in images] if side == "one at a time" else list(counter.count(images))
            rates[side].append(len(images) / (time.perf_counter() - start))
            answers[side] = rows
        print(f"round {round_index + 1}: " + ", ".join(f"{side} {r[-1]:.2f} photos/s" for side, r in rates.items()))
    one, batched = (statistics.median(r) for r in rates.values())
    same = sum(
        a.count == b.count and a.needs_review == b.needs_review
        for a, b in zip(answers["one at a time"], answers["batched"], strict=True)
    )
    print(f"median photos/s: one at a time {one:.2f}, batched {batched:.2f} ({batched / one:.2f}x)")
    print(f"identical answers: {same}/{len(images)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, help="a model artifact (default: train a random-init one)")
    p.add_argument("--images", type=Path, default=ROOT / "data" / "sample" / "images", help="a folder of photos")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each side (default: 3)")
    p.add_argument("--batch-size", type=int, default=16, help="photos per forward pass (default: 16)")
    p.add_argument("--workers", type=int, default=4, help="decoding threads (default: 4)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N photos (default: all)")
    args = p.parse_args(argv)
    from bincount.serving.batch import list_photos

    images = list_photos([args.images])
    if args.limit:
        images = images[: args.limit]
    if not images:
        raise SystemExit(f"no photos in {args.images}")
    with tempfile.TemporaryDirectory() as work:
        model_dir = args.model_dir or _train(Path(work))
        measure(model_dir, images, args.rounds, args.batch_size, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
