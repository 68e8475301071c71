"""A local API Gateway (REST API, Lambda proxy integration) in front of a Lambda handler, over HTTP.

Each request becomes the proxy event API Gateway would send (headers and multi-value headers, query string,
``requestContext`` with a request id, the body base64-encoded when its type is a binary media type), the handler's
answer becomes the HTTP response. Like API Gateway it checks the ``x-api-key`` when a key is set (403
``{"message": "Forbidden"}``), answers 502 ``{"message": "Internal server error"}`` when the function fails, and
413 when the event would exceed Lambda's request limit. Static pages (the twin's web page) can be served beside it.

Beyond its capacity it answers 429 ``{"error": ...}`` with ``Retry-After`` (as API Gateway's throttling does,
through the stack's JSON gateway responses) instead of piling up threads: at most ``max_concurrency`` requests run
the handler at once, and a request waits at most ``queue_timeout`` seconds for a slot.

Run the project's Lambda with ``python -m bincount.local_api`` (``ENDPOINT_NAME`` and
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` in the environment, as the function's configuration).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import importlib.util
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bincount.http_server import BackgroundServer
from bincount.media import API_BINARY_MEDIA_TYPES

log = logging.getLogger(__name__)

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambda"
LAMBDA_HANDLER = "api.handler"
BINARY_MEDIA_TYPES: tuple[str, ...] = API_BINARY_MEDIA_TYPES
"""What the stack sets on the REST API (one definition, in bincount.media): image bodies reach the function
base64-encoded, any other as text."""
MAX_EVENT_BYTES = 6 * 1024 * 1024
"""Lambda's synchronous request limit; the event (base64 body included) must fit."""
MAX_BODY_BYTES = 10 * 1024 * 1024
"""API Gateway's payload limit."""
MAX_CONCURRENCY = 8
"""Requests running the handler at once. The endpoint behind it has one worker (about 6 inferences a second on
two cores), so more in flight would only queue there, where the Lambda's 6 s read timeout (and its retry) apply;
they wait here instead, within :data:`QUEUE_TIMEOUT_S`."""
QUEUE_TIMEOUT_S = 10.0
"""How long a request beyond :data:`MAX_CONCURRENCY` waits for a slot before it is answered 429."""
THROTTLED_MESSAGE = "too many requests: retry in a moment"

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any]]


def load_lambda_module(module_name: str = "api", lambda_dir: Path = LAMBDA_DIR) -> ModuleType:
    """``lambda_dir/<module_name>.py``, imported once under a name of its own (``lambda_<module_name>``), so it
    never shadows a project module."""
    name = f"lambda_{module_name}"
    if name in sys.modules:
        return sys.modules[name]
    path = lambda_dir / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no Lambda module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_handler(spec: str = LAMBDA_HANDLER, lambda_dir: Path = LAMBDA_DIR) -> Handler:
    """The function named by a Lambda handler setting (``module.function``), loaded from ``lambda_dir``."""
    module_name, _, function = spec.rpartition(".")
    return getattr(load_lambda_module(module_name, lambda_dir), function)


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of Lambda's context object that handlers commonly read."""

    aws_request_id: str
    function_name: str = "bincount-api"
    memory_limit_in_mb: int = 512
    timeout_s: float = 30.0
    started: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


def is_binary(content_type: str | None, binary_media_types: Iterable[str]) -> bool:
    """Whether API Gateway would base64-encode a body of this type."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(kind, pattern) for pattern in binary_media_types)


def proxy_event(
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    stage: str = "local",
    source_ip: str = "127.0.0.1",
    binary_media_types: Iterable[str] = BINARY_MEDIA_TYPES,
) -> dict[str, Any]:
    """The REST API proxy event for one HTTP request (``target`` is the path with its query string)."""
    url = urlsplit(target)
    path = url.path or "/"
    if path == f"/{stage}" or path.startswith(f"/{stage}/"):  # the stage's invoke URL: the function never sees it
        path = path[len(stage) + 1 :] or "/"
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    single_headers = {name: values[-1] for name, values in multi_headers.items()}
    lower = {name.lower(): value for name, value in single_headers.items()}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    binary = is_binary(lower.get("content-type"), binary_media_types)
    if not body:
        text = None
    elif binary:
        text = base64.b64encode(body).decode("ascii")
    else:
        text = body.decode("utf-8", "replace")
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "stage": stage,
            "resourcePath": path,
            "path": f"/{stage}{path}",
            "httpMethod": method,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": lower.get("user-agent"), "apiKey": lower.get("x-api-key")},
        },
        "body": text,
        "isBase64Encoded": bool(text) and binary,
    }


class LocalApi(BackgroundServer):
    """The HTTP server of the API (start/stop, or a context manager)."""

    def __init__(
        self,
        handler: Handler,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        binary_media_types: Iterable[str] = BINARY_MEDIA_TYPES,
        pages: Mapping[str, tuple[bytes, str]] | None = None,
        max_concurrency: int | None = None,
        queue_timeout: float = QUEUE_TIMEOUT_S,
    ) -> None:
        if (max_concurrency is not None and max_concurrency < 1) or queue_timeout < 0:
            raise ValueError("max_concurrency must be at least 1 and queue_timeout at least 0")
        self.handler = handler
        self.max_concurrency = max_concurrency
        self.queue_timeout = queue_timeout
        self._slots = threading.BoundedSemaphore(max_concurrency or 1)
        self._lock = threading.Lock()
        self.throttled = 0  # requests answered 429 because every slot stayed busy
        self.api_key = api_key
        self.stage = stage
        self.binary_media_types = tuple(binary_media_types)
        self.pages = dict(pages or {})  # GET path -> (body, content type), served without the key or the Lambda
        super().__init__(_ApiHandler, host=host, port=port)  # <url>/ and <url>/<stage>/ both reach the API


class _ApiHandler(BaseHTTPRequestHandler):
    server: LocalApi
    protocol_version = "HTTP/1.1"
    timeout = 60

    def do_GET(self) -> None:
        page = self.server.pages.get(urlsplit(self.path).path)
        if page is not None:
            self._send(HTTPStatus.OK, page[0], [("Content-Type", page[1])])
        else:
            self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def do_PATCH(self) -> None:
        self._proxy()

    def do_OPTIONS(self) -> None:
        self._proxy()

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "Request Too Long"})
            return
        body = self.rfile.read(length) if length else b""
        if self.server.api_key is not None and self.headers.get("x-api-key") != self.server.api_key:
            self._send_json(HTTPStatus.FORBIDDEN, {"message": "Forbidden"})
            return
        event = proxy_event(
            self.command,
            self.path,
            self.headers.items(),
            body,
            stage=self.server.stage,
            source_ip=self.client_address[0],
            binary_media_types=self.server.binary_media_types,
        )
        if len(json.dumps(event)) > MAX_EVENT_BYTES:  # Lambda refuses the invocation itself
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "Request Too Long"})
            return
        if self.server.max_concurrency and not self.server._slots.acquire(timeout=self.server.queue_timeout):
            with self.server._lock:
                self.server.throttled += 1
            self._send_json(HTTPStatus.TOO_MANY_REQUESTS, {"error": THROTTLED_MESSAGE}, [("Retry-After", "1")])
            return
        context = LambdaContext(event["requestContext"]["requestId"], started=time.monotonic())
        try:
            result = self.server.handler(event, context)
            status = int(result["statusCode"])
            raw = result.get("body") or ""
            payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        except Exception:  # what API Gateway answers when the function fails or its answer is malformed
            log.exception("the Lambda handler failed")
            self._send_json(HTTPStatus.BAD_GATEWAY, {"message": "Internal server error"})
            return
        finally:
            if self.server.max_concurrency:
                self.server._slots.release()
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        headers.append(("x-amzn-RequestId", context.aws_request_id))
        self._send(status, payload, headers)

    def _send_json(self, status: int, payload: Mapping[str, Any], headers: Iterable[tuple[str, str]] = ()) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), [("Content-Type", "application/json"), *headers])

    def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Serve the API's Lambda handler as a local API Gateway.", add_help=add_help)
    p.add_argument("--handler", default=LAMBDA_HANDLER, help=f"module.function in lambda/ (default: {LAMBDA_HANDLER})")
    p.add_argument("--api-key", help="require this x-api-key (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default: 3000)")
    p.add_argument(
        "--max-concurrency", type=int, default=MAX_CONCURRENCY, help=f"requests at once (default: {MAX_CONCURRENCY})"
    )
    p.add_argument(
        "--queue-timeout",
        type=float,
        default=QUEUE_TIMEOUT_S,
        help=f"seconds a request waits for a slot before a 429 (default: {QUEUE_TIMEOUT_S:g})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = LocalApi(
        load_handler(args.handler),
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        max_concurrency=args.max_concurrency,
        queue_timeout=args.queue_timeout,
    )
    with server:
        print(f"API at {server.url} (POST /count, GET /health)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
