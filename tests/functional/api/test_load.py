"""Load on loopback (issue 7): the local API and endpoint under a bounded concurrent load answer every request, and
beyond its capacity the local API sheds load with 429 JSON instead of falling over, then serves normally again.
The full-size run (16 clients, 1,000 requests, p50/p99) is ``bench/load.py``; these are its bounded versions."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.load import photo_bodies, run_load
from bincount.local.api import LocalApi, load_handler, load_lambda_module
from bincount.local.endpoint import ContainerModel, Endpoint, LocalSageMaker
from tests.support.serving import ENDPOINT, photo_bytes, set_aws_env


def post(url: str, body: bytes, content_type: str = "image/jpeg") -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


# --- the real stack under a bounded load -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(model_dir: Path) -> Iterator[tuple[str, str]]:
    model = ContainerModel(model_dir, name=ENDPOINT)
    api = load_lambda_module("api")
    with (
        LocalSageMaker([Endpoint(ENDPOINT, model)]) as endpoint,
        pytest.MonkeyPatch.context() as monkeypatch,
        LocalApi(load_handler()) as server,
    ):
        set_aws_env(monkeypatch, endpoint.url)
        monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
        level = api.log.level
        api.log.setLevel("WARNING")  # no line per request
        api.runtime_client.cache_clear()
        yield f"{server.url}/count", f"{endpoint.url}/endpoints/{ENDPOINT}/invocations"
        api.log.setLevel(level)
        api.runtime_client.cache_clear()


@pytest.mark.parametrize("target", ["api", "endpoint"])
def test_a_bounded_concurrent_load_gets_no_errors(stack: tuple[str, str], target: str) -> None:
    url = stack[0] if target == "api" else stack[1]
    result = run_load(url, photo_bodies(), clients=8, requests=48)
    assert result.errors == 0, (result.statuses, result.failures[:3])
    assert result.statuses[200] == 48
    summary = result.summary()
    assert summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["throughput_rps"] > 0


# --- beyond capacity: 429, then normal service -------------------------------------------------------------------


def slow_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A function that takes a while (as a model call does), so that a flood fills every slot."""
    time.sleep(0.3)
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"count": 3}'}


def test_a_flood_is_shed_with_429_json_and_service_resumes() -> None:
    with LocalApi(slow_handler, max_concurrency=2, queue_timeout=0.2) as server:
        url = f"{server.url}/count"
        results: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def client() -> None:
            try:
                answer = post(url, photo_bytes(0))
            except BaseException as e:  # a refused or reset connection would be the server falling over
                with lock:
                    failures.append(e)
                return
            with lock:
                results.append(answer)

        threads = [threading.Thread(target=client) for _ in range(24)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.monotonic() - started

        assert failures == []
        assert len(results) == 24
        statuses = sorted(status for status, _, _ in results)
        assert set(statuses) == {200, 429}, statuses
        assert statuses.count(200) >= 2  # every slot did work
        throttled = [(headers, body) for status, headers, body in results if status == 429]
        assert server.throttled == len(throttled)
        for headers, body in throttled:
            assert body == {"error": "too many requests: retry in a moment"}
            assert headers["Content-Type"] == "application/json" and headers["Retry-After"] == "1"
        assert elapsed < 10  # shed within the queue bound, not queued without limit
        # The flood is over: the next requests are served normally.
        for _ in range(3):
            assert post(url, photo_bytes(0))[0] == 200


def test_requests_within_the_queue_bound_wait_instead_of_failing() -> None:
    with LocalApi(slow_handler, max_concurrency=1, queue_timeout=5) as server:
        result = run_load(f"{server.url}/count", [(photo_bytes(0), "image/jpeg")], clients=4, requests=8)
    assert result.statuses[200] == 8 and result.errors == 0
    assert server.throttled == 0


def test_the_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        LocalApi(slow_handler, max_concurrency=0)
