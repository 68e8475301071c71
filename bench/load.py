"""Load on loopback: concurrent clients POST real photos to the local API (Lambda handler -> local SageMaker
endpoint -> the real inference handler) or straight to the endpoint, and the latency percentiles and throughput.

    .venv/bin/python bench/load.py                            # quick artifact, 16 clients, 1,000 requests, API
    .venv/bin/python bench/load.py --model-dir DIR            # a trained artifact (model.pth, code/...)
    .venv/bin/python bench/load.py --target endpoint          # the endpoint alone: sizes the usage plan
    .venv/bin/python bench/load.py --target both              # the API, then the endpoint alone
    .venv/bin/python bench/load.py --api-url http://127.0.0.1:8080 --api-key KEY   # a running API (bincount up)

Every request must come back 200 with a count; any other answer is an error, and the exit status is 1 when there
were errors (429s included: at this load the API must not need to shed any).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ENDPOINT = "bincount-load"
QUICK_HYPERPARAMETERS = {"epochs": 1, "batch-size": 8, "pretrained": "false", "workers": 0, "seed": 7}


@dataclass
class LoadResult:
    """What a load run saw: one latency per answered request, status counts, transport failures."""

    requests: int
    clients: int
    wall_s: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # transport errors, or a 200 without a count

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.failures)

    @property
    def throughput(self) -> float:
        return self.statuses[200] / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "clients": self.clients,
            "ok": self.statuses[200],
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall_s, 2),
            "throughput_rps": round(self.throughput, 2),
            "p50_ms": round(self.percentile(50), 1),
            "p99_ms": round(self.percentile(99), 1),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 1),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else float("nan"),
        }


def run_load(
    url: str,
    bodies: Sequence[tuple[bytes, str]],
    *,
    clients: int = 16,
    requests: int = 1000,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> LoadResult:
    """``requests`` POSTs to ``url`` from ``clients`` threads, each on its own keep-alive connection; the bodies
    (bytes, content type) are sent in turn."""
    parts = urlsplit(url)
    result = LoadResult(requests=requests, clients=clients, wall_s=0.0)
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body, content_type = bodies[i % len(bodies)]
                sent = {"Content-Type": content_type, "Accept": "application/json", **(headers or {})}
                started = time.perf_counter()
                try:
                    conn.request("POST", parts.path or "/", body=body, headers=sent)
                    response = conn.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                    with lock:
                        result.failures.append(f"{type(e).__name__}: {e}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    result.statuses[response.status] += 1
                    if response.status == 200:
                        result.latencies_ms.append(elapsed)
                        try:
                            if json.loads(payload).get("count") not in range(1, 6):
                                result.failures.append(f"no count in {payload[:100]!r}")
                        except ValueError:
                            result.failures.append(f"not JSON: {payload[:100]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"load-{n}", daemon=True) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.wall_s = time.perf_counter() - started
    return result


def photo_bodies() -> list[tuple[bytes, str]]:
    """The vendored real photos as JPEG request bodies."""
    from bincount.data.sample import SAMPLE_DIR

    return [(p.read_bytes(), "image/jpeg") for p in sorted((SAMPLE_DIR / "images").glob("*.jpg"))]


@contextlib.contextmanager
def local_stack(model_dir: Path | None, *, max_concurrency: int, queue_timeout: float) -> Iterator[tuple[str, str]]:
    """The local endpoint and API in this process: yields (API /count URL, endpoint invocations URL)."""
    from bincount.local.api import LocalApi, load_handler, load_lambda_module
    from bincount.local.endpoint import ContainerModel, Endpoint, LocalSageMaker

    with contextlib.ExitStack() as stack:
        if model_dir is None:
            from bincount.data.sample import sample_dataset
            from bincount.training.jobs import run_job

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bincount-load-")))
            print("training a quick artifact (random init, 1 epoch) ...", file=sys.stderr, flush=True)
            job = run_job("train_model.py", sample_dataset(tmp / "data"), tmp / "job", QUICK_HYPERPARAMETERS)
            if job.returncode != 0:
                raise SystemExit(f"training failed:\n{job.log[-3000:]}")
            model_dir = job.model_dir
        endpoint = stack.enter_context(LocalSageMaker([Endpoint(ENDPOINT, ContainerModel(model_dir, name=ENDPOINT))]))
        os.environ.update(
            {
                "ENDPOINT_NAME": ENDPOINT,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url,
                "AWS_ENDPOINT_URL_SAGEMAKER": endpoint.url,
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
                "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                "AWS_EC2_METADATA_DISABLED": "true",
                "LOG_LEVEL": "WARNING",  # one JSON line per request would dominate the measurement
            }
        )
        api_module = load_lambda_module("api")
        api_module.log.setLevel("WARNING")
        api_module.runtime_client.cache_clear()
        api = stack.enter_context(
            LocalApi(load_handler(), max_concurrency=max_concurrency, queue_timeout=queue_timeout)
        )
        yield f"{api.url}/count", f"{endpoint.url}/endpoints/{ENDPOINT}/invocations"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    p.add_argument("--requests", type=int, default=1000, help="requests in all (default: 1000)")
    p.add_argument("--target", choices=("api", "endpoint", "both"), default="api", help="what to load (default: api)")
    p.add_argument("--model-dir", type=Path, help="a model artifact (default: train a quick one, about a minute)")
    p.add_argument("--api-url", help="load an API already running at this URL instead (POST <url>/count)")
    p.add_argument("--api-key", help="x-api-key for --api-url")
    p.add_argument("--warmup", type=int, default=20, help="requests before measuring (default: 20)")
    p.add_argument("--max-concurrency", type=int, default=8, help="the local API's concurrency bound (default: 8)")
    p.add_argument("--queue-timeout", type=float, default=30.0, help="its queue wait before a 429 (default: 30)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON only")
    args = p.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        p.error("--clients and --requests must be at least 1")
    bodies = photo_bodies()
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    results: list[tuple[str, LoadResult]] = []
    with contextlib.ExitStack() as stack:
        if args.api_url:
            targets = {"api": args.api_url.rstrip("/") + "/count"}
        else:
            api_url, endpoint_url = stack.enter_context(
                local_stack(args.model_dir, max_concurrency=args.max_concurrency, queue_timeout=args.queue_timeout)
            )
            urls = {"api": api_url, "endpoint": endpoint_url}
            targets = urls if args.target == "both" else {args.target: urls[args.target]}
        for target, url in targets.items():
            if args.warmup:
                run_load(url, bodies, clients=min(args.clients, 4), requests=args.warmup, headers=headers)
            result = run_load(url, bodies, clients=args.clients, requests=args.requests, headers=headers)
            results.append((target, result))
            summary = summary_with_target(result, target, url)
            if args.json:
                print(json.dumps(summary), flush=True)
                continue
            print(
                f"{target}: {result.requests} requests from {result.clients} clients in {result.wall_s:.1f}s\n"
                f"  ok {summary['ok']}, errors {summary['errors']} {summary['statuses']}\n"
                f"  throughput {summary['throughput_rps']} req/s\n"
                f"  latency p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms",
                flush=True,
            )
            for failure in result.failures[:5]:
                print(f"  failure: {failure}")
    return 1 if any(result.errors for _, result in results) else 0


def summary_with_target(result: LoadResult, target: str, url: str) -> dict:
    return {"target": target, "url": url, **result.summary()}


if __name__ == "__main__":
    sys.exit(main())
