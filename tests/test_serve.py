"""``bincount serve``, the endpoint image's server: SageMaker's hosting contract over real HTTP on loopback, against
the artifact that ``train_model.py`` really trained."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bincount.labels import COUNTS
from bincount.local_endpoint import ServedModel
from bincount.serve import MAX_REQUEST_BYTES, ModelServer
from tests.serving_helpers import encode, photo, photo_bytes, png_header_only

# What the endpoint image does not install (inference/serving-requirements.txt): a server that imports any of them
# would fail in the image although it works here. The subprocess tests run with these blocked.
NOT_IN_IMAGE = (
    "boto3",
    "botocore",
    "matplotlib",
    "pandas",
    "sagemaker",
    "sagemaker_inference",
    "sagemaker_pytorch_serving_container",
    "smdebug",
    "aws_cdk",
    "moto",
)


def _request(
    url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        connection.close()


def _invoke(url: str, body: bytes, content_type: str | None, accept: str | None = None) -> tuple[int, Any]:
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v}
    status, payload, _ = _request(url, "POST", "/invocations", body, headers)
    return status, json.loads(payload)


class GatedServer(ModelServer):
    """The real server and model; loading waits for :attr:`release_load` so a test sees the server before the model
    is loaded (model_fn itself is not changed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.release_load = threading.Event()
        super().__init__(*args, **kwargs)

    def load(self) -> None:
        self.release_load.wait(60)
        super().load()


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[GatedServer]:
    server = GatedServer(model_dir, port=0, max_concurrency=1, max_waiting=1, wait_seconds=20)
    with server:
        yield server


def test_ping_answers_503_until_the_model_is_loaded_then_200(server: GatedServer) -> None:
    status, body, _ = _request(server.url, "GET", "/ping")
    assert status == 503 and "loading" in json.loads(body)["error"]
    status, body = _invoke(server.url, photo_bytes(0), "image/jpeg")
    assert status == 503 and "loading" in body["error"]
    server.release_load.set()
    assert server.loaded.wait(60) and server.load_error is None
    assert _request(server.url, "GET", "/ping")[0] == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (photo_bytes(3), "image/jpeg"),
        (encode(photo(3), "PNG"), "image/png"),
        (photo_bytes(3), "application/x-image"),
        (encode(photo(3), "PNG"), "application/x-image"),
        (photo_bytes(3), "Image/JPEG; charset=binary"),
    ],
    ids=["jpeg", "png", "x-image-jpeg", "x-image-png", "parameters"],
)
def test_every_accepted_content_type_is_counted(server: GatedServer, body: bytes, content_type: str) -> None:
    server.release_load.set()
    server.loaded.wait(60)
    status, answer = _invoke(server.url, body, content_type, "application/json")
    assert status == 200, answer
    assert answer["count"] in COUNTS and set(answer["probabilities"]) == {str(c) for c in COUNTS}
    assert answer["confidence"] == pytest.approx(max(answer["probabilities"].values()))


def test_the_same_photo_gets_the_same_answer_whatever_its_type(server: GatedServer) -> None:
    server.release_load.set()
    server.loaded.wait(60)
    jpeg = _invoke(server.url, photo_bytes(5), "image/jpeg")[1]
    x_image = _invoke(server.url, photo_bytes(5), "application/x-image")[1]
    assert jpeg == x_image


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "fragment"),
    [
        (photo_bytes(0), "text/plain", None, 415, "Content-Type 'text/plain' is not supported"),
        (photo_bytes(0), None, None, 415, "Content-Type"),
        (b"", "image/jpeg", None, 400, "empty"),
        (b"not an image", "image/jpeg", None, 400, "not a JPEG or PNG image"),
        (photo_bytes(0)[:2000], "image/jpeg", None, 400, "image"),
        (png_header_only(9000, 8000), "image/png", None, 413, "pixels"),
        (photo_bytes(0), "image/jpeg", "text/csv", 406, "Accept"),
    ],
    ids=["type", "no-type", "empty", "not-image", "truncated", "bomb", "accept"],
)
def test_every_refusal_is_its_4xx_with_a_json_error(
    server: GatedServer, body: bytes, content_type: str | None, accept: str | None, status: int, fragment: str
) -> None:
    server.release_load.set()
    server.loaded.wait(60)
    got, answer = _invoke(server.url, body, content_type, accept)
    assert got == status
    assert set(answer) == {"error"} and fragment in answer["error"]
    assert "Traceback" not in answer["error"]


def test_a_body_over_the_limit_is_not_read(server: GatedServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n".encode()
        )
        reply = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            reply += chunk
    assert reply.decode().startswith("HTTP/1.1 413") and b'"error"' in reply


def test_unknown_paths_are_404_and_other_methods_405(server: GatedServer) -> None:
    for method, path, status in [
        ("GET", "/nope", 404),
        ("POST", "/endpoints/x/invocations", 404),
        ("GET", "/invocations", 405),
        ("PUT", "/invocations", 405),
        ("DELETE", "/ping", 405),
    ]:
        got, body, content_type = _request(server.url, method, path, b"" if method != "GET" else None)
        assert got == status, (method, path)
        assert content_type == "application/json" and "error" in json.loads(body)


def test_a_handler_failure_is_a_500_without_a_traceback(server: GatedServer, monkeypatch, caplog) -> None:
    server.release_load.set()
    server.loaded.wait(60)

    def broken(data: Any, model: Any) -> Any:
        raise RuntimeError("tensor shapes do not match")

    monkeypatch.setattr(server.handler, "predict_fn", broken)
    status, answer = _invoke(server.url, photo_bytes(0), "image/jpeg")
    assert status == 500 and set(answer) == {"error"}
    assert "tensor shapes" not in answer["error"] and "Traceback" not in answer["error"]
    assert "tensor shapes do not match" in caplog.text  # the reason is in the log, for the operator


def test_concurrency_is_bounded_and_the_excess_is_refused_at_once(server: GatedServer, monkeypatch) -> None:
    """One request runs the model (max_concurrency=1), one waits (max_waiting=1), a third is answered 503 at once;
    the two admitted ones then get their counts."""
    server.release_load.set()
    server.loaded.wait(60)
    real_predict = server.handler.predict_fn
    running, release = threading.Event(), threading.Event()

    def held(data: Any, model: Any) -> Any:
        running.set()
        release.wait(30)
        return real_predict(data, model)

    monkeypatch.setattr(server.handler, "predict_fn", held)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_invoke, server.url, photo_bytes(1), "image/jpeg")
        assert running.wait(30)
        second = pool.submit(_invoke, server.url, photo_bytes(2), "image/jpeg")
        deadline = time.monotonic() + 10
        while server._admission._value > 0 and time.monotonic() < deadline:  # the second is admitted and waiting
            time.sleep(0.01)
        started = time.monotonic()
        status, answer = _invoke(server.url, photo_bytes(3), "image/jpeg")
        assert status == 503 and "busy" in answer["error"] and time.monotonic() - started < 5
        release.set()
        assert first.result(60)[0] == 200 and second.result(60)[0] == 200


# --- the command, in its own process, as the image runs it -------------------------------------------------------


@pytest.fixture(scope="module")
def image_packages_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``sitecustomize`` makes the packages the image lacks unimportable."""
    folder = tmp_path_factory.mktemp("image-packages")
    (folder / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in NOT_IN_IMAGE), encoding="utf-8"
    )
    return folder


@pytest.fixture
def served(model_dir: Path, image_packages_only: Path) -> Iterator[ServedModel]:
    model = ServedModel(model_dir, name="bincount", pythonpath=[image_packages_only])
    yield model
    model.close()


def test_the_command_serves_with_only_the_image_packages(served: ServedModel) -> None:
    assert _request(served.url, "GET", "/ping")[0] == 200
    status, answer = _invoke(served.url, photo_bytes(4), "image/jpeg")
    assert status == 200 and answer["count"] in COUNTS
    # The artifact train_model.py wrote serves int8 under the image's torch, and model_fn says so exactly once.
    assert sum("serving path: " in line for line in served.output) == 1
    assert any(line.rstrip().endswith("serving path: int8") for line in served.output), served.output


def test_sigterm_finishes_the_request_in_flight_and_exits_0(served: ServedModel) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    body = photo_bytes(6)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        time.sleep(0.5)  # the request is being read
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[len(body) // 2 :])
        reply = b""
        while not reply.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["count"] in COUNTS
    assert served.process.wait(10) == 0
    assert time.monotonic() - started < 10
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()


def test_an_idle_keep_alive_connection_does_not_delay_the_exit(served: ServedModel) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/ping")
    assert connection.getresponse().read() == b""  # the connection stays open, idle
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(10) == 0 and time.monotonic() - started < 5
    connection.close()


def test_an_artifact_that_cannot_load_ends_the_command_with_its_reason(
    model_dir: Path, tmp_path: Path, image_packages_only: Path
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "model.pth").write_bytes(b"not a state dict")
    with pytest.raises(RuntimeError, match="could not be loaded") as caught:
        ServedModel(broken, pythonpath=[image_packages_only], startup_seconds=60)
    assert "model.pth" in str(caught.value)
