"""Benchmark: feature-extraction throughput, photos per second, as the extraction job runs it.

``bincount.training.features.extract_channel`` (JPEG decoding, eval transform, the frozen ResNet-50 on both views of
each photo) over a channel of real ABID photos, repeated; prints photos/s and backbone images/s (2 per photo) as JSON.
On a GPU it runs the job's GPU path (channels-last, autocast). The weights are random (no download): the throughput is
the same as with ImageNet's.

    .venv/bin/python bench/extraction_throughput.py                    # the vendored 50 photos, 3 rounds
    .venv/bin/python bench/extraction_throughput.py --photos ../shared/abid/sample/images --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from bincount.data.sample import SAMPLE_DIR
from bincount.model.network import ModelConfig, build_model
from bincount.training.features import extract_channel
from bincount.training.sharding import loader_workers


def channel_of(photos: Path, out: Path) -> Path:
    """The photos as one channel (``<count>/<id>.jpg``; the count does not matter here)."""
    for image in sorted(photos.glob("*.jpg")):
        (out / "1").mkdir(parents=True, exist_ok=True)
        (out / "1" / image.name).symlink_to(image.resolve())
    return out


def decode_rate(photos: Path, rounds: int) -> dict[str, object]:
    """Photos/s of JPEG decoding + the eval transform in one process on one thread: a GPU job's CPU-side bound."""
    from bincount.data.channel import load_rgb
    from bincount.data.transforms import eval_transform

    torch.set_num_threads(1)
    transform = eval_transform()
    files = sorted(photos.glob("*.jpg"))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for f in files:
            image = load_rgb(f)
            if image is not None:
                transform(image)
        best = min(best, time.perf_counter() - start)
    return {"photos": len(files), "decode_photos_per_second_per_cpu": round(len(files) / best, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=SAMPLE_DIR / "images", help="a folder of .jpg (default: vendored)")
    p.add_argument("--rounds", type=int, default=3, help="timed passes after one warm-up (default: 3)")
    p.add_argument("--batch-size", type=int, default=64, help="photos per batch (default: 64, the job's)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="loader processes")
    p.add_argument(
        "--decode-only", action="store_true", help="time only decoding + transform in one process (photos/s per CPU)"
    )
    args = p.parse_args()
    if args.decode_only:
        print(json.dumps(decode_rate(args.photos, args.rounds), indent=2))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    backbone = build_model(ModelConfig(), pretrained=False).backbone.to(device)
    workers = loader_workers(args.workers, device)
    with tempfile.TemporaryDirectory() as tmp:
        channel = channel_of(args.photos, Path(tmp) / "train")
        extract_channel(channel, backbone, device, batch_size=args.batch_size, workers=workers)  # warm-up
        seconds, photos = [], 0
        for _ in range(args.rounds):
            start = time.perf_counter()
            photos = len(extract_channel(channel, backbone, device, batch_size=args.batch_size, workers=workers).ids)
            seconds.append(time.perf_counter() - start)
    best = min(seconds)
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "workers": workers,
        "photos": photos,
        "seconds": [round(s, 2) for s in seconds],
        "photos_per_second": round(photos / best, 2),
        "backbone_images_per_second": round(2 * photos / best, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
