"""``bincount train``: one local training job on the vendored photos (or a folder in the channel layout),
run exactly as SageMaker runs ``train_model.py``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bincount.data.manifest import SPLITS


def add_train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train locally with SageMaker's environment, on the vendored photos by default")
    p.add_argument("--data", type=Path, help="a folder with train/ valid/ test/ channels (default: vendored photos)")
    p.add_argument(
        "--run-dir", type=Path, default=Path("runs/train"), help="where everything goes (default: runs/train)"
    )
    p.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    p.add_argument("--batch-size", type=int, default=16, help="batch size (default: 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument(
        "--pretrained",
        choices=("true", "false"),
        default="false",
        help="ImageNet weights need internet (default: false, random init)",
    )
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from bincount.data.sample import sample_dataset
    from bincount.training.jobs import run_job

    run_dir: Path = args.run_dir.resolve()
    if args.data:
        channels = {split: (args.data / split).resolve() for split in SPLITS}
    else:
        channels = sample_dataset(run_dir / "data")
    hyperparameters = {
        "epochs": args.epochs,
        "batch-size": args.batch_size,
        "lr": args.lr,
        "pretrained": args.pretrained,
    }
    print(f"training on {channels['train'].parent} with {hyperparameters} (log: {run_dir / 'job' / 'job.log'})")
    start = time.perf_counter()
    result = run_job("train_model.py", channels, run_dir / "job", hyperparameters)
    if result.returncode != 0:
        print(result.log[-3000:], file=sys.stderr)
        print(f"training failed (exit {result.returncode}); full log: {run_dir / 'job' / 'job.log'}", file=sys.stderr)
        return result.returncode
    report = json.loads((result.output_dir / "evaluation.json").read_text(encoding="utf-8"))
    print(
        f"done in {time.perf_counter() - start:.0f}s: test accuracy {report['accuracy']:.3f}, "
        f"RMSE {report['rmse']:.3f} on {report['n_test']} photos"
    )
    print(f"model artifact: {result.model_dir}\nevaluation and plots: {result.output_dir}")
    return 0
