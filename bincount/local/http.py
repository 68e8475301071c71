"""A threaded HTTP server that serves in the background: the base of the local stand-ins for AWS services."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

_Server = TypeVar("_Server", bound="BackgroundServer")


class BackgroundServer(ThreadingHTTPServer):
    """Serves in a daemon thread between :meth:`start` and :meth:`stop`, or as a context manager.

    ``port=0`` picks a free port; :attr:`url` says which.
    """

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._thread: threading.Thread | None = None
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
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
