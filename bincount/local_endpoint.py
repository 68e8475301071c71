"""A local SageMaker endpoint over HTTP: the sagemaker-runtime wire API in front of the real handler.

Behind each endpoint, the model is served the way one of the endpoint's images serves it:

- :class:`ServedModel` (the default image, ``servingImage: project``): ``bincount serve`` in its own process,
  reached over loopback HTTP, the very server the endpoint image runs;
- :class:`ContainerModel` (``servingImage: prebuilt``): the handler module from the artifact's ``code/``
  (``SAGEMAKER_PROGRAM``) driven by ``sagemaker-pytorch-inference``'s ``HandlerService`` and
  ``sagemaker_inference``'s ``Transformer``, as AWS's PyTorch inference container does.

In front of it, the answers of the service itself:

- ``POST /endpoints/<name>/invocations`` (InvokeEndpoint): 200 with the model's body; a model 4xx/5xx as
  ``ModelError`` (HTTP 424) carrying ``OriginalStatusCode`` and ``OriginalMessage``; an unknown or not yet
  InService endpoint as ``ValidationError`` "Endpoint <name> of account <id> not found."; a body over 6 MB as 413.
- ``POST /`` with ``X-Amz-Target: SageMaker.DescribeEndpoint``: the endpoint's name and status.
- ``GET /ping``: 200, for readiness checks.

Point boto3 at it with ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (and ``AWS_ENDPOINT_URL_SAGEMAKER`` for
DescribeEndpoint). Run one with ``python -m bincount.local_endpoint MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bincount.http_server import BackgroundServer
from bincount.media import JSON, MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

HANDLER_PROGRAM = "endpoint_inference.py"
LOCAL_ACCOUNT = "000000000000"
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating"})
"""Endpoint statuses in which the real service routes invocations to the model."""
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Bodies beyond this are not even read; the connection is closed."""
REST_JSON = "application/json"
AMZ_JSON = "application/x-amz-json-1.1"
DESCRIBE_ENDPOINT = "SageMaker.DescribeEndpoint"


# --- the container: sagemaker-inference's machinery around the handler -------------------------------------------


class _RequestProcessor:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)

    def get_request_properties(self) -> dict[str, str]:
        return self._headers


class ServingContext:
    """The part of TorchServe's ``ts.context.Context`` that ``sagemaker_inference`` uses; one per request."""

    def __init__(self, model_name: str, model_dir: str, headers: Mapping[str, str] | None = None) -> None:
        self.model_name = model_name
        self.system_properties: dict[str, Any] = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [_RequestProcessor(headers or {})]
        self.status = int(HTTPStatus.OK)
        self.phrase = HTTPStatus.OK.phrase
        self.content_type: str | None = None

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status, self.phrase = int(code), phrase

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type = value


@dataclass(frozen=True)
class ContainerResponse:
    """What the model server answered: status, body and content type."""

    status: int
    body: bytes
    content_type: str


@contextlib.contextmanager
def _container_environment(code_dir: Path, program: str) -> Iterator[None]:
    """What the container sets up to import the handler: ``SAGEMAKER_PROGRAM`` and ``code/`` on the path.

    Undone afterwards (the toolkit also prepends ``code/`` to ``PYTHONPATH``); the imported handler stays loaded.
    """
    saved = {name: os.environ.get(name) for name in ("SAGEMAKER_PROGRAM", "PYTHONPATH")}
    module = sys.modules.get(Path(program).stem)
    if module is not None and Path(getattr(module, "__file__", "")).parent != code_dir:
        del sys.modules[module.__name__]  # import the artifact's own handler, not one loaded from elsewhere
    os.environ["SAGEMAKER_PROGRAM"] = program
    sys.path.insert(0, str(code_dir))
    try:
        yield
    finally:
        sys.path.remove(str(code_dir))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ContainerModel:
    """A model artifact served as the PyTorch inference container serves it.

    ``model_fn`` runs here, at start-up, so an artifact that does not fit fails now, as the container would.
    Requests are handled one at a time, like one model-server worker.
    """

    def __init__(self, model_dir: str | Path, *, name: str = "model", program: str = HANDLER_PROGRAM) -> None:
        try:
            from sagemaker_pytorch_serving_container.handler_service import HandlerService
        except ImportError as e:
            raise RuntimeError(
                "the local endpoint needs AWS's serving toolkit: pip install sagemaker-pytorch-inference"
            ) from e
        self.model_dir = str(Path(model_dir).resolve())
        code_dir = Path(self.model_dir) / "code"
        if not (code_dir / program).is_file():
            raise FileNotFoundError(f"no code/{program} in {self.model_dir}: is this a bincount model artifact?")
        self.name = name
        self._service = HandlerService()
        self._lock = threading.Lock()
        with _container_environment(code_dir, program):
            self._service.initialize(ServingContext(name, self.model_dir))

    def invoke(self, body: bytes, content_type: str | None, accept: str | None = None) -> ContainerResponse:
        """One request through the toolkit, as the model server passes it on."""
        headers = {key: value for key, value in (("Content-Type", content_type), ("Accept", accept)) if value}
        context = ServingContext(self.name, self.model_dir, headers)
        with self._lock:
            (result,) = self._service.handle([{"body": body}], context)
        payload = result.encode("utf-8") if isinstance(result, str) else bytes(result)
        return ContainerResponse(context.status, payload, context.content_type or JSON)


class ServedModel:
    """A model artifact served by ``bincount serve`` in its own process, as the endpoint image runs it.

    The process is started here and answers over loopback HTTP, like the container behind a real endpoint; it
    loads the model at start and this waits for its ``/ping``. :meth:`close` sends SIGTERM, as SageMaker does.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str = "model",
        startup_seconds: float = 120.0,
        workers: int = 1,
        pythonpath: Sequence[str | Path] = (),
    ) -> None:
        self.model_dir = str(Path(model_dir).resolve())
        self.name = name
        self.output: list[str] = []  # the server's last lines of output (its log)
        self.process = subprocess.Popen(
            self.command(self.model_dir, workers=workers),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_serve_environment(pythonpath),
        )
        self.url = self._wait_ready(startup_seconds)

    @staticmethod
    def command(model_dir: str, *, port: int = 0, workers: int = 1) -> list[str]:
        """The server's command line: the endpoint image's entry point (``python -m bincount serve``) with options."""
        options = ["--model-dir", model_dir, "--port", str(port), "--workers", str(workers)]
        return [sys.executable, "-m", "bincount", "serve", *options]

    def _wait_ready(self, startup_seconds: float) -> str:
        assert self.process.stdout is not None
        lines = self.output
        url = None
        deadline = time.monotonic() + startup_seconds
        for line in self.process.stdout:  # ends when the process exits
            lines.append(line)
            match = _SERVING_LINE.search(line)
            if match:
                url = match["url"]
                break
        drain = threading.Thread(target=_drain, args=(self.process.stdout, lines), daemon=True)
        if url is not None:
            drain.start()
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(OSError):
                    if _http("GET", f"{url}/ping", timeout=5)[0] == HTTPStatus.OK:
                        return url
                time.sleep(0.1)
        self.close()
        if drain.is_alive():
            drain.join(5)
        raise RuntimeError(f"bincount serve did not become ready for {self.model_dir}:\n{''.join(lines)[-3000:]}")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None = None) -> ContainerResponse:
        """One request to the server's ``/invocations``, as SageMaker's front end passes it on."""
        headers = {key: value for key, value in (("Content-Type", content_type), ("Accept", accept)) if value}
        status, payload, response_type = _http("POST", f"{self.url}/invocations", body, headers, timeout=60)
        return ContainerResponse(status, payload, response_type or JSON)

    def close(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then wait; returns the exit code (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode


_SERVING_LINE = re.compile(r"bincount serve: .* on (?P<url>http://\S+)")


def _serve_environment(pythonpath: Sequence[str | Path] = ()) -> dict[str, str]:
    """The server's environment: this one, with ``pythonpath`` and the project root importable (as the image's
    PYTHONPATH makes it)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*pythonpath, root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _drain(stream: Any, lines: list[str], keep: int = 200) -> None:
    """Keep reading the server's output (so it never blocks on a full pipe): the last ``keep`` lines, and the log."""
    for line in stream:
        lines.append(line)
        del lines[:-keep]
        log.debug("serve: %s", line.rstrip())


def _http(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None, *, timeout: float
) -> tuple[int, bytes, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(method, parts.path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        connection.close()


# --- the service: endpoints by name, and their HTTP API ----------------------------------------------------------


@dataclass
class Endpoint:
    """A named endpoint. Without a model it exists but serves nothing (for example while it is Creating)."""

    name: str
    model: ContainerModel | ServedModel | None = None
    status: str = "InService"
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.status in SERVING_STATUSES and self.model is None:
            raise ValueError(f"endpoint {self.name} is {self.status} but has no model to serve")


class LocalSageMaker(BackgroundServer):
    """The HTTP server of the endpoints (start/stop, or a context manager)."""

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str | None = None,
        account: str = LOCAL_ACCOUNT,
    ) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        self.invocations: Counter[str] = Counter()  # requests that reached each endpoint's model
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.account = account
        super().__init__(_SageMakerHandler, host=host, port=port)

    def arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:endpoint/{name.lower()}"


class _SageMakerHandler(BaseHTTPRequestHandler):
    server: LocalSageMaker
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
    timeout = 60  # an idle or stalled connection is dropped

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/ping":
            self._send(HTTPStatus.OK, b"", "text/plain")
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"message": f"no route GET {self.path}"})

    def _method_not_allowed(self) -> None:
        """What the service answers to a method its routes do not take: 405 JSON, never the server's HTML 501."""
        self._read_body(required=False)
        self._send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"message": f"method {self.command} is not allowed"})

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def do_PATCH(self) -> None:
        self._method_not_allowed()

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations":
            self._invoke_endpoint(unquote(parts[1]), body)
        elif path == "/" and self.headers.get("X-Amz-Target"):
            self._control_plane(self.headers["X-Amz-Target"], body)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"message": f"no route POST {path}"})

    # InvokeEndpoint
    def _invoke_endpoint(self, name: str, body: bytes) -> None:
        endpoint = self.server.endpoints.get(name)
        if endpoint is None or endpoint.model is None or endpoint.status not in SERVING_STATUSES:
            # What the service answers both for a missing endpoint and for one that is not InService yet.
            message = f"Endpoint {name} of account {self.server.account} not found."
            self._send_aws_error(HTTPStatus.BAD_REQUEST, "ValidationError", message)
            return
        if len(body) > MAX_PAYLOAD_BYTES:  # the service refuses it before the container sees it
            message = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": message})
            return
        self.server.invocations[name] += 1
        result = endpoint.model.invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
        if result.status == HTTPStatus.OK:
            extra = {"x-Amzn-Invoked-Production-Variant": "AllTraffic"}
            self._send(HTTPStatus.OK, result.body, result.content_type, extra)
        else:
            self._send_model_error(name, result)

    def _send_model_error(self, name: str, result: ContainerResponse) -> None:
        kind = "client" if 400 <= result.status < 500 else "server"
        original = result.body.decode("utf-8", "replace")
        log_group = f"/aws/sagemaker/Endpoints/{name}"
        payload = {
            "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
            "LogStreamArn": f"arn:aws:logs:{self.server.region}:{self.server.account}:log-group:{log_group}",
            "Message": (
                f'Received {kind} error ({result.status}) from primary with message "{original}". '
                f"See the log group {log_group} in account {self.server.account} for more information."
            ),
            "OriginalMessage": original,
            "OriginalStatusCode": result.status,
        }
        self._send_aws_error(HTTPStatus.FAILED_DEPENDENCY, "ModelError", payload=payload)

    # The control plane (JSON 1.1 protocol): DescribeEndpoint only.
    def _control_plane(self, target: str, body: bytes) -> None:
        if target != DESCRIBE_ENDPOINT:
            self._send_amz_json(HTTPStatus.BAD_REQUEST, {"__type": "UnknownOperationException", "message": target})
            return
        try:
            name = json.loads(body or b"{}")["EndpointName"]
        except (ValueError, KeyError, TypeError):
            self._send_amz_json(
                HTTPStatus.BAD_REQUEST, {"__type": "ValidationException", "message": "EndpointName is required"}
            )
            return
        endpoint = self.server.endpoints.get(name)
        if endpoint is None:
            message = f'Could not find endpoint "{self.server.arn(name)}".'
            self._send_amz_json(HTTPStatus.BAD_REQUEST, {"__type": "ValidationException", "message": message})
            return
        self._send_amz_json(
            HTTPStatus.OK,
            {
                "EndpointName": endpoint.name,
                "EndpointArn": self.server.arn(endpoint.name),
                "EndpointConfigName": endpoint.name,
                "EndpointStatus": endpoint.status,
                "CreationTime": endpoint.created,
                "LastModifiedTime": endpoint.created,
            },
        )

    # HTTP plumbing
    def _read_body(self, *, required: bool = True) -> bytes | None:
        length = self.headers.get("Content-Length")
        if not required and length is None:
            return b""
        if length is None or not length.isdigit():
            self.close_connection = True
            self._send_json(HTTPStatus.LENGTH_REQUIRED, {"message": "Content-Length is required"})
            return None
        if int(length) > MAX_REQUEST_BYTES:
            self.close_connection = True
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "request too large"})
            return None
        return self.rfile.read(int(length))

    def _send_aws_error(
        self, status: HTTPStatus, code: str, message: str = "", *, payload: dict[str, Any] | None = None
    ) -> None:
        self._send_json(status, payload or {"message": message}, {"x-amzn-ErrorType": code})

    def _send_amz_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), AMZ_JSON)

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), REST_JSON, headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Serve a model artifact as a local SageMaker endpoint.", add_help=add_help)
    p.add_argument("model_dir", type=Path, help="the model artifact folder (model.pth, model_config.json, code/)")
    p.add_argument("--name", default="bincount", help="endpoint name (default: bincount)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument(
        "--toolkit",
        action="store_true",
        help="serve through AWS's serving toolkit (the prebuilt image's way) instead of `bincount serve`",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = (ContainerModel if args.toolkit else ServedModel)(args.model_dir, name=args.name)
    with LocalSageMaker([Endpoint(args.name, model)], host=args.host, port=args.port) as server:
        print(
            f"endpoint {args.name} at {server.url}\n"
            f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={server.url} AWS_ENDPOINT_URL_SAGEMAKER={server.url}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    if isinstance(model, ServedModel):
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
