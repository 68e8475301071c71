"""The base of the local stand-ins for AWS services: a threaded HTTP server that serves in the background, and a
request handler with the plumbing both servers share (JSON answers, Content-Length, keep-alive, quiet logs)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

log = logging.getLogger(__name__)

JSON = "application/json"
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding"})

_Server = TypeVar("_Server", bound="BackgroundServer")


class BackgroundServer(ThreadingHTTPServer):
    """Serves in a daemon thread between :meth:`start` and :meth:`stop`, or as a context manager.

    ``port=0`` picks a free port; :attr:`url` says which.
    """

    daemon_threads = True
    request_queue_size = 64  # a burst of connections waits in the backlog (then a 429), not a TCP reset

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._thread: threading.Thread | None = None
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def start(self: _Server) -> _Server:
        self._thread = threading.Thread(target=self.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for the serving thread, and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 (as botocore and browsers expect), idle connections dropped after a minute, answers with
    an exact Content-Length, and the access log at debug level."""

    protocol_version = "HTTP/1.1"
    timeout = 60

    def send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer ``status`` with ``body``; ``headers`` may not set the length or the connection's framing."""
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(
        self,
        status: int,
        payload: Mapping[str, Any],
        headers: Iterable[tuple[str, str]] = (),
        *,
        content_type: str = JSON,
    ) -> None:
        """Answer ``status`` with ``payload`` as JSON."""
        self.send(status, json.dumps(payload).encode("utf-8"), [("Content-Type", content_type), *headers])

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
