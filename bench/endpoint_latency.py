"""Benchmark: the classic endpoint handler against ours, per request, on the same real photos, in one run.

- baseline (written here): PIL open + convert RGB, Resize(224) + CenterCrop(224), ToTensor + Normalize, fp32 eager
  torchvision ResNet-50 with a 5-way linear head (the artifact's weights), batch 1, ``torch.no_grad``.
- ours: the real ``input_fn -> predict_fn -> output_fn`` of ``inference/endpoint_inference.py`` after its real
  ``model_fn`` on a real artifact (8-bit resize in torch, int8 oneDNN backbone, fp32 head).
- reference: the same handler with ``BINCOUNT_REFERENCE=1`` (its exact fp32 eager path), for the agreement.

Each side runs in its own subprocess (clean peak RSS, its own load time), with 2 torch threads (an ml.t2.medium
has 2 vCPUs). Every request is the photo's bytes, as the endpoint receives them. The sides take turns, photo by
photo (one computes while the others wait), so background load on the machine falls on all of them alike and the
ratios hold even when the absolute times wander.

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
SIDES = ("baseline", "ours", "reference")
TAG = "@bench "  # marks the sides' answers on stdout, apart from anything a library prints there


def _photos(images: Path) -> list[Path]:
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not photos:
        raise SystemExit(f"no .jpg/.png photos in {images}")
    return photos


def _baseline(model_dir: Path) -> tuple[float, object, str]:
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

    return load_s, request, "classic fp32 eager"


def _ours(model_dir: Path) -> tuple[float, object, str]:
    sys.path.insert(0, str(ROOT / "inference"))
    import endpoint_inference as handler

    start = time.perf_counter()
    model = handler.model_fn(str(model_dir))
    load_s = time.perf_counter() - start

    def request(body: bytes) -> tuple[str, list[float]]:
        text = handler.output_fn(handler.predict_fn(handler.input_fn(body, "image/jpeg"), model), "application/json")
        probs = json.loads(text)["probabilities"]
        return text, [probs[str(c)] for c in range(1, 6)]

    return load_s, request, model.path


def _serve(name: str, model_dir: Path, images: Path) -> None:
    """One side, in this process (the parent runs it as a subprocess): load, warm up, then answer the parent's
    requests one at a time on stdin/stdout, so that only one side ever runs at a time."""
    import torch

    torch.set_num_threads(THREADS)
    bodies = [p.read_bytes() for p in _photos(images)]
    load_s, request, path = _baseline(model_dir) if name == "baseline" else _ours(model_dir)
    for body in bodies[:WARMUP]:
        request(body)
    _say({"load_s": load_s, "path": path})
    for line in sys.stdin:
        if not line.strip():
            break
        body = bodies[int(line)]
        start = time.perf_counter()
        _, probs = request(body)
        _say({"latency": time.perf_counter() - start, "probabilities": probs})
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    _say({"peak_rss_mib": peak_kib / 1024})


def _say(message: dict[str, object]) -> None:
    print(TAG + json.dumps(message), flush=True)


class Side:
    """A side's subprocess: its own model, load time and peak RSS; requests sent one at a time."""

    def __init__(self, name: str, model_dir: Path, images: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "PYTHONPATH": str(ROOT)}
        env.pop("BINCOUNT_REFERENCE", None)
        if name == "reference":
            env["BINCOUNT_REFERENCE"] = "1"
        command = [sys.executable, __file__, "--side", name, "--model-dir", str(model_dir), "--images", str(images)]
        self.name = name
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close()); shown if the side fails
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, text=True
        )
        ready = self._read()
        self.load_s, self.path = float(ready["load_s"]), str(ready["path"])
        self.latencies: list[float] = []
        self.probabilities: dict[int, list[float]] = {}

    def _read(self) -> dict[str, object]:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line.removeprefix(TAG))
        self.errors.seek(0)
        raise SystemExit(f"the {self.name} side failed (status {self.proc.wait()}):\n{self.errors.read()[-3000:]}")

    def request(self, index: int) -> float:
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.latencies.append(float(answer["latency"]))
        self.probabilities.setdefault(index, answer["probabilities"])
        return self.latencies[-1]

    def close(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self.peak_rss_mib = float(self._read()["peak_rss_mib"])
        self.proc.wait()
        self.errors.close()


def measure(model_dir: Path, images: Path, rounds: int) -> tuple[dict[str, Side], list[float]]:
    """Every photo through every side, interleaved (photo by photo, the order of the sides rotating), so that the
    machine's background load falls on all sides alike; returns the sides and the paired baseline/ours ratios."""
    sides = {name: Side(name, model_dir, images) for name in SIDES}
    ratios: list[float] = []
    n_photos = len(_photos(images))
    try:
        for r in range(rounds):
            for index in range(n_photos):
                shift = (r + index) % len(SIDES)
                latency = {name: sides[name].request(index) for name in SIDES[shift:] + SIDES[:shift]}
                ratios.append(latency["baseline"] / latency["ours"])
    finally:
        for side in sides.values():
            side.close()
    return sides, ratios


def _train(work: Path) -> Path:
    from bincount.data.sample import sample_dataset
    from bincount.training.jobs import run_job

    print("no --model-dir: training a random-init artifact with training/train_model.py (about a minute or two)")
    hp = {"epochs": 1, "batch-size": 8, "pretrained": "false", "workers": 0, "seed": 7}
    job = run_job("train_model.py", sample_dataset(work / "data"), work / "job", hp)
    if job.returncode != 0:
        raise SystemExit(f"training failed:\n{job.log[-3000:]}")
    return job.model_dir


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _p95(values: list[float]) -> float:
    return _quantile(values, 0.95)


def _count(probabilities: list[float]) -> int:
    return max(range(len(probabilities)), key=probabilities.__getitem__) + 1


def report(sides: dict[str, Side], ratios: list[float]) -> None:
    def stats(side: Side) -> dict[str, float]:
        lat = side.latencies
        return {
            "median (ms)": 1000 * statistics.median(lat),
            "p95 (ms)": 1000 * _p95(lat),
            "requests/s": len(lat) / sum(lat),
            "model load (s)": side.load_s,
            "peak RSS (MiB)": side.peak_rss_mib,
        }

    b, o, f = (stats(sides[name]) for name in SIDES)
    n = len(sides["ours"].latencies)
    print(f"\nEndpoint handler, {n} requests per side, interleaved photo by photo, {THREADS} torch threads")
    print("paths: " + "; ".join(f"{name}: {side.path}" for name, side in sides.items()))
    print(f"{'':18}{'baseline':>12}{'ours':>12}{'ours/baseline':>15}{'reference fp32':>16}")
    for key in b:
        print(f"{key:18}{b[key]:>12.1f}{o[key]:>12.1f}{o[key] / b[key]:>14.2f}x{f[key]:>16.1f}")
    print(
        f"median latency: {b['median (ms)'] / o['median (ms)']:.2f}x lower than the baseline "
        f"(per request, paired: median {statistics.median(ratios):.2f}x, "
        f"middle half {_quantile(ratios, 0.25):.2f}x-{_quantile(ratios, 0.75):.2f}x)"
    )

    ours, ref, base = (sides[name].probabilities for name in ("ours", "reference", "baseline"))
    pairs = [(ours[i], ref[i]) for i in sorted(ref)]
    same = sum(_count(p) == _count(q) for p, q in pairs)
    diffs = [max(abs(a - c) for a, c in zip(p, q, strict=True)) for p, q in pairs]
    base_same = sum(_count(base[i]) == _count(ref[i]) for i in ref)
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
        _serve(args.side, args.model_dir, args.images)
        return
    with tempfile.TemporaryDirectory(prefix="bincount-bench-") as tmp:
        model_dir = args.model_dir or _train(Path(tmp))
        report(*measure(model_dir, args.images, args.rounds))


if __name__ == "__main__":
    main()
