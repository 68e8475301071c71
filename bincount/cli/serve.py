"""``bincount serve``: the model server over SageMaker's hosting contract (:mod:`bincount.serving.server`), the
endpoint image's entry point (``python -m bincount serve``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from bincount.logs import setup_logging
from bincount.serving.server import (
    DEFAULT_MODEL_DIR,
    DEFAULT_PORT,
    HOST_ENV,
    MODEL_DIR_ENV,
    PORT_ENV,
    WORKERS_ENV,
    ModelServer,
)

log = logging.getLogger(__name__)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"environment variable {name}={raw!r} must be a whole number of at least 1")
    return int(raw)


def add_serve_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model artifact over SageMaker's hosting contract (the endpoint image's entry point)",
        description="GET /ping and POST /invocations for one model artifact, as the SageMaker endpoint runs it.",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help=f"the model artifact folder (default: ${MODEL_DIR_ENV}, else {DEFAULT_MODEL_DIR})",
    )
    p.add_argument("--port", type=int, default=None, help=f"port (default: ${PORT_ENV}, else {DEFAULT_PORT})")
    p.add_argument(
        "--host", default=None, help=f"address to bind (default: ${HOST_ENV}, else 127.0.0.1; the image sets 0.0.0.0)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"requests that run the model at once (default: ${WORKERS_ENV}, else 1)",
    )
    p.set_defaults(func=run_serve)


def _stop_if_load_fails(server: ModelServer) -> None:
    """A model that cannot load ends the process (exit 1): SageMaker then fails the deployment with the log's reason,
    instead of waiting for health checks to time out."""
    server.loaded.wait()
    if server.load_error:
        server.request_stop()


def run_serve(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        model_dir = args.model_dir or Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR)
        port = args.port if args.port is not None else env_int(PORT_ENV, DEFAULT_PORT)
        workers = args.workers if args.workers is not None else env_int(WORKERS_ENV, 1)
        host = args.host or os.environ.get(HOST_ENV) or "127.0.0.1"
        server = ModelServer(model_dir, host=host, port=port, max_concurrency=workers)
    except (ValueError, OSError) as e:
        print(f"bincount serve: {e}", file=sys.stderr)
        return 2
    stop = lambda signum, frame: server.request_stop()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=_stop_if_load_fails, args=(server,), daemon=True).start()
    log.info("serving %s on %s (model slots: %d)", model_dir, server.url, workers)
    print(f"bincount serve: {model_dir} on {server.url}", flush=True)
    server.serve_until_stopped()
    if server.load_error:
        return 1
    log.info("stopped")
    return 0
