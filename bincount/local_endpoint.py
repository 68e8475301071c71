"""A local SageMaker endpoint over HTTP: the sagemaker-runtime wire API in front of the real handler.

The model artifact is served the way the AWS PyTorch inference container serves it: the handler module from its
``code/`` (``SAGEMAKER_PROGRAM``), driven by ``sagemaker-pytorch-inference``'s ``HandlerService`` and
``sagemaker_inference``'s ``Transformer``, so content-type dispatch and error statuses are the container's. In front
of it, the answers of the service itself:

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
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
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


# --- the service: endpoints by name, and their HTTP API ----------------------------------------------------------


@dataclass
class Endpoint:
    """A named endpoint. Without a model it exists but serves nothing (for example while it is Creating)."""

    name: str
    model: ContainerModel | None = None
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = ContainerModel(args.model_dir, name=args.name)
    with LocalSageMaker([Endpoint(args.name, model)], host=args.host, port=args.port) as server:
        print(
            f"endpoint {args.name} at {server.url}\n"
            f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={server.url} AWS_ENDPOINT_URL_SAGEMAKER={server.url}",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
