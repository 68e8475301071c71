"""Benchmark: the classic endpoint handler against ours, per request, on the same real photos, in one run.

- baseline (written here): PIL open + convert RGB, Resize(224) + CenterCrop(224), ToTensor + Normalize, fp32 eager
  torchvision ResNet-50 with a 5-way linear head (the artifact's weights), batch 1, ``torch.no_grad``.
- ours: the real ``input_fn -> predict_fn -> output_fn`` of ``inference/endpoint_inference.py`` after its real
  ``model_fn`` on a real artifact (int8 backbone, draft JPEG decoding).
- reference: the same handler with ``BINCOUNT_REFERENCE=1`` (its exact fp32 eager path), for the agreement.

Each side runs in its own subprocess (clean peak RSS, its own load time), with 2 torch threads (an ml.t2.medium
has 2 vCPUs). Every request is the photo's bytes, as the endpoint receives them.

    .venv/bin/python bench/endpoint_latency.py                        # trains a (random-init) artifact first
    .venv/bin/python bench/endpoint_latency.py --model-dir DIR --images DIR --rounds 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2
WARMUP = 2


def _photos(images: Path) -> list[Path]:
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not photos:
        raise SystemExit(f"no .jpg/.png photos in {images}")
    return photos


def _baseline(model_dir: Path) -> tuple[object, object]:
    """The classic handler: model_fn and a per-request function."""
    import torch
    from PIL import Image
    from torchvision import models, transforms

    start = time.perf_counter()
    net = models.resnet50(weights=None)
    net.fc = torch.nn.Linear(2048, 5)
    state = torch.load(model_dir / "model.pth", map_location="cpu", weights_only=True)
    renamed = {k.removeprefix("backbone.").replace("head.", "fc."): v for k, v in state.items()}
    net.load_state_dict(renamed)
    net.eval()
    load_s = time.perf_counter() - start
    transform = transforms.Compose(
        [
            transforms.Resize(224),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )

    def request(body: bytes) -> tuple[str, list[float]]:
        img = Image.open(io.BytesIO(body)).convert("RGB")
        with torch.no_grad():
            probs = torch.softmax(net(transform(img).unsqueeze(0)), dim=1)[0]
        out = probs.tolist()
        return json.dumps({"count": int(probs.argmax()) + 1, "probabilities": out}), out

    return load_s, request


def _ours(model_dir: Path) -> tuple[float, object]:
    sys.path.insert(0, str(ROOT / "inference"))
    import endpoint_inference as handler

    start = time.perf_counter()
    model = handler.model_fn(str(model_dir))
    load_s = time.perf_counter() - start

    def request(body: bytes) -> tuple[str, list[float]]:
        text = handler.output_fn(handler.predict_fn(handler.input_fn(body, "image/jpeg"), model), "application/json")
        probs = json.loads(text)["probabilities"]
        return text, [probs[str(c)] for c in range(1, 6)]

    return load_s, request


def side(name: str, model_dir: Path, images: Path, rounds: int) -> dict[str, object]:
    """Measure one side in this process (run by the parent as a subprocess)."""
    import torch

    torch.set_num_threads(THREADS)
    bodies = [p.read_bytes() for p in _photos(images)]
    load_s, request = _baseline(model_dir) if name == "baseline" else _ours(model_dir)
    for body in bodies[:WARMUP]:
        request(body)
    latencies: list[float] = []
    probabilities: list[list[float]] = []
    for r in range(rounds):
        for body in bodies:
            start = time.perf_counter()
            _, probs = request(body)
            latencies.append(time.perf_counter() - start)
            if r == 0:
                probabilities.append(probs)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"load_s": load_s, "latencies": latencies, "probabilities": probabilities, "peak_rss_mib": peak_kib / 1024}


def _run_side(name: str, model_dir: Path, images: Path, rounds: int) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "PYTHONPATH": str(ROOT)}
    env.pop("BINCOUNT_REFERENCE", None)
    if name == "reference":
        env["BINCOUNT_REFERENCE"] = "1"
    command = [sys.executable, __file__, "--side", name, "--model-dir", str(model_dir), "--images", str(images)]
    proc = subprocess.run([*command, "--rounds", str(rounds)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _train(work: Path) -> Path:
    from bincount.dataset import sample_dataset
    from bincount.jobs import run_job

    print("no --model-dir: training a random-init artifact with training/train_model.py (about a minute or two)")
    hp = {"epochs": 1, "batch-size": 8, "pretrained": "false", "workers": 0, "seed": 7}
    job = run_job("train_model.py", sample_dataset(work / "data"), work / "job", hp)
    if job.returncode != 0:
        raise SystemExit(f"training failed:\n{job.log[-3000:]}")
    return job.model_dir


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(base: dict, ours: dict, ref: dict, n_photos: int) -> None:
    def stats(r: dict) -> dict[str, float]:
        lat = r["latencies"]
        return {
            "median (ms)": 1000 * statistics.median(lat),
            "p95 (ms)": 1000 * _p95(lat),
            "requests/s": len(lat) / sum(lat),
            "model load (s)": r["load_s"],
            "peak RSS (MiB)": r["peak_rss_mib"],
        }

    b, o, f = stats(base), stats(ours), stats(ref)
    print(
        f"\nEndpoint handler, {len(base['latencies'])} requests per side ({n_photos} photos), {THREADS} torch threads"
    )
    print(f"{'':18}{'baseline':>12}{'ours':>12}{'ours/baseline':>15}{'reference fp32':>16}")
    for key in b:
        print(f"{key:18}{b[key]:>12.1f}{o[key]:>12.1f}{o[key] / b[key]:>14.2f}x{f[key]:>16.1f}")
    print(f"median speed-up: {b['median (ms)'] / o['median (ms)']:.2f}x lower latency than the baseline")

    pairs = list(zip(ours["probabilities"], ref["probabilities"], strict=True))
    same = sum(max(range(5), key=p.__getitem__) == max(range(5), key=q.__getitem__) for p, q in pairs)
    diffs = [max(abs(a - c) for a, c in zip(p, q, strict=True)) for p, q in pairs]
    base_same = sum(
        max(range(5), key=p.__getitem__) == max(range(5), key=q.__getitem__)
        for p, q in zip(base["probabilities"], ref["probabilities"], strict=True)
    )
    print(f"\nAgreement with our exact fp32 path (BINCOUNT_REFERENCE=1) on {len(pairs)} photos:")
    print(f"  identical counts: {same}/{len(pairs)} ({same / len(pairs):.0%});  baseline vs reference: {base_same}")
    print(
        f"  max |p_ours - p_ref| over classes: max {max(diffs):.4f}, median {statistics.median(diffs):.4f}, "
        f"mean {statistics.mean(diffs):.4f}"
    )
    print(
        "  NB: with a random-init backbone (no pretrained weights offline) the counts are not meaningful and the\n"
        "  agreement is weak evidence; the probability differences are the better signal. Rerun with --model-dir\n"
        "  on an artifact trained from pretrained weights for the real figure."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=ROOT / "data" / "sample" / "images", help="folder of photos")
    p.add_argument("--model-dir", type=Path, help="an unpacked artifact (default: train a random-init one)")
    p.add_argument("--rounds", type=int, default=1, help="passes over the photos per side (default: 1)")
    p.add_argument("--side", choices=("baseline", "ours", "reference"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        print(json.dumps(side(args.side, args.model_dir, args.images, args.rounds)))
        return
    with tempfile.TemporaryDirectory(prefix="bincount-bench-") as tmp:
        model_dir = args.model_dir or _train(Path(tmp))
        results = {
            name: _run_side(name, model_dir, args.images, args.rounds) for name in ("baseline", "ours", "reference")
        }
        report(results["baseline"], results["ours"], results["reference"], len(_photos(args.images)))


if __name__ == "__main__":
    main()
