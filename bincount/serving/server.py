"""``bincount serve``: the endpoint image's model server, speaking SageMaker's hosting contract (docs/design.md §8).

SageMaker starts the endpoint's container with the argument ``serve`` and talks to it over HTTP on port 8080:

- ``GET /ping``: 200 once the model is loaded, 503 while it loads (it loads at start, through ``model_fn``);
- ``POST /invocations``: the body and Content-Type go to ``input_fn`` -> ``predict_fn`` -> ``output_fn`` (Accept
  honoured). A client mistake (the handler's toolkit errors with a 4xx status) answers that status with JSON
  ``{"error": "..."}``; anything else answers 500 with a JSON error and no traceback (the traceback goes to the log).
- any other path: 404; another method: 405.

One model in memory; at most ``max_concurrency`` requests run the model at once (``SAGEMAKER_MODEL_SERVER_WORKERS``,
default 1: the handler already spreads one request over the instance's vCPUs), a bounded number wait, and the rest
get 503 at once. SIGTERM stops accepting, lets in-flight requests finish, and exits 0.

The local twin serves through the same server (``bincount up`` starts ``bincount serve``), so the twin and the
cloud run one server. Standard library only, besides the handler it loads.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from bincount.paths import HANDLER
from bincount.serving.media import JSON, MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
MODEL_DIR_ENV = "SM_MODEL_DIR"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
HOST_ENV = "BINCOUNT_SERVE_HOST"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
MAX_WAITING = 16
"""Requests that may wait for a model slot; beyond them a request is answered 503 at once."""
WAIT_SECONDS = 30.0
"""Longest a request waits for a model slot before it is answered 503 (SageMaker's invocation timeout is 60 s)."""
MAX_REQUEST_BYTES = 2 * MAX_PAYLOAD_BYTES
"""Bodies beyond this are not read: 413 and the connection is closed (the handler refuses over 6 MB itself)."""
MAX_CONNECTIONS = 64
"""Open connections beyond this are closed at once: each one holds a thread."""
IDLE_SECONDS = 65
"""An idle keep-alive connection is dropped after this (above SageMaker's 60 s invocation timeout)."""


def load_handler(path: Path = HANDLER) -> ModuleType:
    """Import the inference handler module (the four SageMaker functions) from ``path``."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"no inference handler at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body and content type."""

    status: int
    body: bytes
    content_type: str = JSON

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        return cls(status, json.dumps({"error": message}).encode("utf-8"))


class ModelServer(ThreadingHTTPServer):
    """The model server: loads the model in the background at start, then serves it.

    Use :meth:`start` / :meth:`stop` (or a context manager) to run it in a background thread, or
    :meth:`serve_until_stopped` to serve in the calling thread until :meth:`request_stop` (SIGTERM).
    """

    daemon_threads = False  # in-flight requests finish before the server closes
    block_on_close = True
    allow_reuse_address = True

    def __init__(
        self,
        model_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        handler: Path = HANDLER,
        max_concurrency: int = 1,
        max_waiting: int = MAX_WAITING,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.model_dir = str(model_dir)
        self.handler_path = handler
        self.handler: ModuleType | None = None
        self.model: Any = None
        self.load_error: str | None = None
        self.loaded = threading.Event()  # set when loading ended, well or not
        self.max_concurrency = max_concurrency
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._admission = threading.BoundedSemaphore(max_concurrency + max_waiting)
        self._connections: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()  # connections with a request being read or answered
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    @property
    def ready(self) -> bool:
        return self.model is not None

    # --- the model ---------------------------------------------------------------------------------------------
    def load(self) -> None:
        """Import the handler and run ``model_fn`` (in the background thread :meth:`start` spawns)."""
        started = time.perf_counter()
        try:
            handler = load_handler(self.handler_path)
            self.model = handler.model_fn(self.model_dir)
            self.handler = handler
            log.info("model from %s loaded in %.1f s", self.model_dir, time.perf_counter() - started)
        except Exception as e:  # the reason goes to /ping and the log; SageMaker sees the container unhealthy
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("the model in %s could not be loaded", self.model_dir)
        finally:
            self.loaded.set()

    def invoke(self, body: bytes, content_type: str, accept: str) -> Answer:
        """One request through ``input_fn`` -> ``predict_fn`` -> ``output_fn``, within the concurrency bounds."""
        if not self.ready or self.handler is None:
            return Answer.error(HTTPStatus.SERVICE_UNAVAILABLE, self.load_error or "the model is still loading")
        if not self._admission.acquire(blocking=False):
            return Answer.error(HTTPStatus.SERVICE_UNAVAILABLE, "server busy: too many requests waiting, retry")
        try:
            if not self._slots.acquire(timeout=self.wait_seconds):
                return Answer.error(HTTPStatus.SERVICE_UNAVAILABLE, "server busy: no model slot came free, retry")
            try:
                return self._run_handler(body, content_type, accept)
            finally:
                self._slots.release()
        finally:
            self._admission.release()

    def _run_handler(self, body: bytes, content_type: str, accept: str) -> Answer:
        handler = self.handler
        assert handler is not None
        try:
            data = handler.input_fn(body, content_type)
            prediction = handler.predict_fn(data, self.model)
            output = handler.output_fn(prediction, accept)
        except Exception as e:
            status = getattr(e, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500:
                return Answer.error(status, str(getattr(e, "message", e)))
            log.exception("the handler failed on a %d-byte %s request", len(body), content_type or "untyped")
            return Answer.error(HTTPStatus.INTERNAL_SERVER_ERROR, "the model failed on this request: see the logs")
        if isinstance(output, tuple):  # (body, content type), as some handlers answer
            output, response_type = output
        else:
            response_type = JSON
        payload = output.encode("utf-8") if isinstance(output, str) else bytes(output)
        return Answer(HTTPStatus.OK, payload, response_type)

    # --- connections -------------------------------------------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            crowded = len(self._connections) >= MAX_CONNECTIONS
            if not crowded:
                self._connections.add(request)
        if crowded:
            log.warning("refusing a connection from %s: %d open", client_address, MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
            self._busy.discard(request)
        super().shutdown_request(request)

    def mark_busy(self, connection: socket.socket, busy: bool) -> None:
        with self._connections_lock:
            if busy:
                self._busy.add(connection)
            else:
                self._busy.discard(connection)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- running -----------------------------------------------------------------------------------------------
    def serve_until_stopped(self) -> None:
        """Load the model in the background and serve in this thread until :meth:`request_stop`."""
        threading.Thread(target=self.load, name="model-loader", daemon=True).start()
        try:
            self.serve_forever(poll_interval=0.2)
        finally:
            self._close_idle_connections()
            self.server_close()  # joins the request threads: in-flight requests finish

    def request_stop(self) -> None:
        """Stop accepting and end :meth:`serve_until_stopped` (safe from a signal handler)."""
        self._stopping.set()
        threading.Thread(target=self.shutdown, name="model-server-stop", daemon=True).start()

    def _close_idle_connections(self) -> None:
        """End the keep-alive connections that wait for a next request; a request being read or answered goes on
        (its connection closes after the answer)."""
        with self._connections_lock:
            connections = list(self._connections - self._busy)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self.serve_until_stopped, name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.request_stop()
            self._thread.join(timeout=10)
            self._thread = None
        else:
            self.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"  # keep-alive, as SageMaker's front end uses
    timeout = IDLE_SECONDS

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.server.mark_busy(self.connection, True)
        return parsed

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/ping":
            if self.server.ready:
                self._answer(Answer(HTTPStatus.OK, b"", "text/plain"))
            else:
                reason = self.server.load_error or "the model is still loading"
                self._answer(Answer.error(HTTPStatus.SERVICE_UNAVAILABLE, reason))
        elif path == "/invocations":
            self._answer(Answer.error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST /invocations"))
        else:
            self._answer(Answer.error(HTTPStatus.NOT_FOUND, f"no route GET {path}: use GET /ping, POST /invocations"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path != "/invocations":
            self._answer(Answer.error(HTTPStatus.NOT_FOUND, f"no route POST {path}: use POST /invocations"))
            return
        answer = self.server.invoke(body, self.headers.get("Content-Type", ""), self.headers.get("Accept", JSON))
        self._answer(answer)

    def _method_not_allowed(self) -> None:
        self.close_connection = True  # the body, if any, is not read
        self._answer(Answer.error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed"))

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def do_PATCH(self) -> None:
        self._method_not_allowed()

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._answer(Answer.error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length"))
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self.close_connection = True
            self._answer(Answer.error(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}"))
            return None
        if int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._answer(Answer.error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_REQUEST_BYTES} bytes"))
            return None
        return self.rfile.read(int(length))

    def _answer(self, answer: Answer) -> None:
        if self.server.stopping:
            self.close_connection = True
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body)
        self.server.mark_busy(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# --- the command -------------------------------------------------------------------------------------------------
