"""Benchmark: what the training diagnostics cost (bincount.diagnostics: the rules, the per-epoch timing and a
``torch.profiler`` trace of the first steps, exported as a Chrome trace and a top-operators table).

A run of the real ``train_one_epoch`` (4 epochs, the pipeline's default) without a monitor against one with it,
interleaved round by round on the same data, model state and seed; prints both sides' median run time and the
ratio. The default workload is the
pipeline's default final job: the head trained on cached ResNet-50 features (2048 per photo) of a training channel
the size of file_list.json's (8,352 photos), batch 32. The trace lands in the first epoch, so ``--epochs 1`` is the
worst case: a job of several epochs pays it once.

    .venv/bin/python bench/profiler_overhead.py                      # head on cached features, 5 rounds
    .venv/bin/python bench/profiler_overhead.py --head mlp --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bincount.data import collate_skipping_bad
from bincount.diagnostics import TrainingMonitor
from bincount.labels import NUM_CLASSES
from bincount.model import HEADS, ModelConfig, build_head
from bincount.train import get_args_parser, train_one_epoch


def run_seconds(
    model: nn.Module,
    loader: DataLoader,
    state: dict,
    args: argparse.Namespace,
    *,
    epochs: int,
    monitored: bool,
    out: Path,
) -> float:
    """Seconds of ``epochs`` epochs of training, with or without the diagnostics (rules, timing, the trace)."""
    model.load_state_dict(state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    loader.generator.manual_seed(0)
    monitor = None
    if monitored:
        monitor = TrainingMonitor(args, torch.device("cpu"), num_classes=NUM_CLASSES, output_dir=out)
    start = time.perf_counter()
    for epoch in range(epochs):
        if monitor is not None:
            monitor.start_epoch(epoch)
        train_one_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, torch.device("cpu"), monitor=monitor)
        if monitor is not None:
            monitor.end_epoch([1.0], [1.0])
    if monitor is not None:
        monitor.write()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8352, help="training photos (default: 8352)")
    parser.add_argument("--features", type=int, default=2048, help="feature size (default: 2048, ResNet-50's)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    parser.add_argument("--head", choices=HEADS, default="linear", help="(default: linear)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs of one run (default: 4, the pipeline's; 1 = the worst case)"
    )
    parser.add_argument("--profile-steps", type=int, default=3, help="traced steps (default: 3, the scripts' default)")
    bench = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(bench.images, bench.features, generator=generator),
        torch.randint(0, NUM_CLASSES, (bench.images,), generator=generator),
    )
    loader = DataLoader(
        data,
        batch_size=bench.batch_size,
        shuffle=True,
        collate_fn=collate_skipping_bad,
        generator=torch.Generator().manual_seed(0),
    )
    model = build_head(ModelConfig(head=bench.head))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    args = get_args_parser().parse_args(["--profile-steps", str(bench.profile_steps)])
    plain, monitored = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run_seconds(model, loader, state, args, epochs=1, monitored=True, out=Path(tmp) / "warmup")  # first use
        for r in range(bench.rounds):
            sides = [(False, plain), (True, monitored)]
            for flag, times in sides if r % 2 == 0 else sides[::-1]:
                out = Path(tmp) / str(r)
                times.append(run_seconds(model, loader, state, args, epochs=bench.epochs, monitored=flag, out=out))
    steps = -(-bench.images // bench.batch_size)
    a, b = statistics.median(plain), statistics.median(monitored)
    paired = statistics.median(m / p for p, m in zip(plain, monitored, strict=True))
    print(
        f"{bench.rounds} rounds, interleaved; one run = {bench.epochs} epochs of {steps} steps of {bench.batch_size} "
        f"({bench.head} head on {bench.features} features, {torch.get_num_threads()} threads)"
    )
    print(f"{'':<28}{'plain':>10}{'diagnostics':>14}{'ratio':>9}")
    print(f"{'median run (s)':<28}{a:>10.3f}{b:>14.3f}{b / a:>8.3f}x")
    print(f"{'fastest run (s)':<28}{min(plain):>10.3f}{min(monitored):>14.3f}{min(monitored) / min(plain):>8.3f}x")
    print(f"{'paired ratio, median':<28}{'':>24}{paired:>8.3f}x")
    print(f"overhead: {100 * (paired - 1):+.1f}% of a {bench.epochs}-epoch run ({bench.profile_steps} profiled steps)")


if __name__ == "__main__":
    main()
