"""Helpers of the serving tests: real photos in other encodings, AWS settings for loopback servers, and a stub that
answers with AWS's own error shapes (for conditions a local endpoint cannot produce: throttling...)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import shutil
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from bincount.data.sample import SAMPLE_DIR
from bincount.local.http import BackgroundServer
from bincount.model.artifact import HANDLER

PHOTOS = sorted((SAMPLE_DIR / "images").glob("*.jpg"))
ENDPOINT = "bincount"


def import_handler(module_name: str) -> ModuleType:
    """``inference/endpoint_inference.py`` imported afresh under ``module_name``: each test module gets its own copy
    (its own module state), as each inference container does."""
    spec = importlib.util.spec_from_file_location(module_name, HANDLER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as an import does (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def photo_path(index: int = 0) -> Path:
    """One of the vendored real ABID photos."""
    return PHOTOS[index]


def photo_bytes(index: int = 0) -> bytes:
    return photo_path(index).read_bytes()


def photo(index: int = 0) -> Image.Image:
    with Image.open(photo_path(index)) as img:
        return img.convert("RGB")


def encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG declaring ``width x height`` grayscale pixels: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def reset_clients(api: Any) -> None:
    """Drop the Lambda module's cached boto3 clients, so the next call sees the current environment."""
    api.runtime_client.cache_clear()
    api.sagemaker_client.cache_clear()


def point_lambda_at(api: Any, url: str, monkeypatch: pytest.MonkeyPatch, endpoint: str = ENDPOINT) -> None:
    """Configure the Lambda module as its function configuration would, against a loopback endpoint server."""
    set_aws_env(monkeypatch, url)
    monkeypatch.setenv("ENDPOINT_NAME", endpoint)
    reset_clients(api)


def set_aws_env(monkeypatch: pytest.MonkeyPatch, runtime_url: str, control_url: str | None = None) -> None:
    """Dummy credentials and region, and boto3 pointed at loopback servers (no real AWS is ever called)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", control_url or runtime_url)


@dataclass(frozen=True)
class CannedResponse:
    status: int
    body: Mapping[str, Any] | bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def aws_error(status: int, code: str, message: str) -> CannedResponse:
    """A rest-json AWS error (sagemaker-runtime's protocol) as the service sends it."""
    return CannedResponse(status, {"message": message}, {"x-amzn-ErrorType": code})


class StubAws(BackgroundServer):
    """Answers every request with the same canned response and records the requests (method, path, headers)."""

    def __init__(self, response: CannedResponse) -> None:
        self.response = response
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(_StubHandler)


class _StubHandler(BaseHTTPRequestHandler):
    server: StubAws
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        canned = self.server.response
        body = canned.body if isinstance(canned.body, bytes) else json.dumps(canned.body).encode()
        self.send_response(canned.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", "stub-request")
        for key, value in canned.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


BROKEN_PROGRAM = "broken_inference.py"
BROKEN_HANDLER = '''"""The real handler, except that prediction crashes (as an out-of-memory or a bug would)."""
from endpoint_inference import input_fn, model_fn, output_fn  # noqa: F401


def predict_fn(data, model):
    raise RuntimeError("boom: secret internal detail")
'''


def artifact_copy(model_dir: Path, out: Path) -> Path:
    """A copy of a model artifact (the weights linked, not copied) that a test may change."""
    shutil.copytree(model_dir / "code", out / "code")
    shutil.copy2(model_dir / "model_config.json", out / "model_config.json")
    (out / "model.pth").symlink_to(model_dir / "model.pth")
    return out


def broken_artifact(model_dir: Path, out: Path) -> Path:
    """The trained artifact with a handler whose predict_fn raises: the container answers 500."""
    artifact_copy(model_dir, out)
    (out / "code" / BROKEN_PROGRAM).write_text(BROKEN_HANDLER, encoding="utf-8")
    return out


def rest_event(
    body: bytes | str | None,
    content_type: str | None = "image/jpeg",
    *,
    method: str = "POST",
    path: str = "/count",
    base64_encoded: bool = True,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event as API Gateway sends it (binary media types ``*/*``)."""
    sent = {
        "Accept": "*/*",
        "Host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "x-api-key": "a-key",
    }
    if content_type is not None:
        sent["Content-Type"] = content_type
    sent.update(headers or {})
    if isinstance(body, bytes) and base64_encoded:
        body = base64.b64encode(body).decode("ascii")
    elif isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {name: [value] for name, value in sent.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "httpMethod": method,
            "identity": {"apiKey": "a-key", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": 1428582896000,
            "resourcePath": path,
            "stage": "prod",
        },
        "body": body,
        "isBase64Encoded": base64_encoded and body is not None,
    }
