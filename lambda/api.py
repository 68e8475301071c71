"""The API's Lambda (DESIGN.md §5): API Gateway REST proxy events in, the SageMaker endpoint's count out.

Routes: ``POST /count`` (the raw JPEG or PNG as the body) and ``GET /health``. Deployed alone (the ``lambda/``
folder, handler ``api.handler``), so it imports boto3 and the standard library only. What it checks cheaply before
paying for an endpoint call mirrors ``bincount/media.py`` (the tests keep the two in step).

Every failure is an :class:`ApiError` whose class fixes its status; :func:`handler` is the one place that turns
them into responses ``{"error": "..."}``. Internal details (stack traces, AWS messages) go to the logs only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

ENDPOINT_NAME_ENV = "ENDPOINT_NAME"
JPEG = "image/jpeg"
PNG = "image/png"
JSON = "application/json"
SIGNATURES: dict[str, bytes] = {JPEG: b"\xff\xd8\xff", PNG: b"\x89PNG\r\n\x1a\n"}
"""The accepted content types and their magic bytes; the body may be either, whatever the header says."""
MAX_IMAGE_BYTES = 4_500_000
"""Base64 grows a body by 4/3 and Lambda takes at most 6 MB per request, headers included."""
COUNTS = range(1, 6)
IN_SERVICE = "InService"
NOT_DEPLOYED_HINT = "run the training pipeline first"
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)

# --- time: the answer must reach API Gateway within its 29 s, or the client gets API Gateway's 504 ----------------
API_GATEWAY_TIMEOUT_S = 29
"""A REST API's integration timeout."""
INVOKE_CONNECT_TIMEOUT_S = 2
INVOKE_READ_TIMEOUT_S = 6
"""The endpoint answers one photo in about 0.15 s; 6 s leaves room for a queue behind its one worker."""
INVOKE_ATTEMPTS = 2
"""One retry, on throttling or a transient fault (botocore's standard mode)."""
MAX_RETRY_DELAY_S = 6
"""The longest wait before a retry in standard mode: up to 1 s of jittered backoff, raised to at most 5 s more by an
``x-amz-retry-after`` header."""
DESCRIBE_CONNECT_TIMEOUT_S = 1
DESCRIBE_READ_TIMEOUT_S = 2
DESCRIBE_ATTEMPTS = 1
"""DescribeEndpoint (GET /health, and once after InvokeEndpoint reports the endpoint missing) is not retried."""
HANDLER_WORST_CASE_S = (
    INVOKE_ATTEMPTS * (INVOKE_CONNECT_TIMEOUT_S + INVOKE_READ_TIMEOUT_S)
    + (INVOKE_ATTEMPTS - 1) * MAX_RETRY_DELAY_S
    + DESCRIBE_ATTEMPTS * (DESCRIBE_CONNECT_TIMEOUT_S + DESCRIBE_READ_TIMEOUT_S)
)
"""The longest a request can spend in AWS calls: every attempt timing out, then the DescribeEndpoint (25 s)."""
HANDLER_WORK_MARGIN_S = 2
"""The handler's own work (base64 of a 4.5 MB body, checks, logging) takes well under this."""
TIMEOUT_S = HANDLER_WORST_CASE_S + HANDLER_WORK_MARGIN_S
"""The function's timeout (the stack reads it): 27 s, which leaves API Gateway 2 s for its own overhead and a cold
start, so even the worst case reaches the client as our JSON."""
INVOKE_CONFIG = Config(
    connect_timeout=INVOKE_CONNECT_TIMEOUT_S,
    read_timeout=INVOKE_READ_TIMEOUT_S,
    retries={"mode": "standard", "total_max_attempts": INVOKE_ATTEMPTS},
)
DESCRIBE_CONFIG = Config(
    connect_timeout=DESCRIBE_CONNECT_TIMEOUT_S,
    read_timeout=DESCRIBE_READ_TIMEOUT_S,
    retries={"mode": "standard", "total_max_attempts": DESCRIBE_ATTEMPTS},
)
MAX_DETAIL_CHARS = 300
MAX_CAUSE_CHARS = 2000


# --- typed HTTP errors: the status lives with the class -----------------------------------------------------------


class ApiError(Exception):
    """A failure the client is told about: ``status``, a message fit for clients (the body's ``error``), and
    optionally more body fields and response headers."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        if status is not None:
            self.status = HTTPStatus(status)


class BadRequest(ApiError):
    status = HTTPStatus.BAD_REQUEST


class NotFound(ApiError):
    status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(ApiError):
    status = HTTPStatus.METHOD_NOT_ALLOWED


class PayloadTooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ApiError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class Throttled(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS


class ModelFailed(ApiError):
    status = HTTPStatus.BAD_GATEWAY


class NotDeployed(ApiError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


# --- structured logs ------------------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: level, message, logger, and the record's ``fields`` (request id, timings...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"level": record.levelname, "message": record.getMessage(), "logger": record.name}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


log = logging.getLogger("bincount.api")
if not log.handlers:
    _stdout = logging.StreamHandler(sys.stdout)
    _stdout.setFormatter(JsonFormatter())
    log.addHandler(_stdout)
    log.propagate = False
log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))


# --- AWS clients (created on first use, reused while the Lambda stays warm) ----------------------------------------


@cache
def runtime_client() -> Any:
    """sagemaker-runtime; ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` may point it at a local endpoint."""
    return boto3.client("sagemaker-runtime", config=INVOKE_CONFIG)


@cache
def sagemaker_client() -> Any:
    """The SageMaker control plane, for DescribeEndpoint."""
    return boto3.client("sagemaker", config=DESCRIBE_CONFIG)


# --- the request ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the routes need from an API Gateway REST proxy event."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: Any  # str or None in the events API Gateway sends; anything else is refused with a 400
    is_base64: bool
    request_id: str
    log_fields: dict[str, Any] = field(default_factory=dict)  # what the route adds to the request's log line

    @classmethod
    def from_event(cls, event: Mapping[str, Any], context: Any = None) -> Request:
        """Read leniently: API Gateway always sends well-formed events, but a malformed one (a test console, another
        integration) must still get an answer, so values of the wrong type count as absent."""
        event = _mapping(event)
        headers: dict[str, str] = {}
        for name, values in _mapping(event.get("multiValueHeaders")).items():
            if isinstance(values, list) and values and isinstance(values[-1], str):
                headers[str(name).lower()] = values[-1]
        for name, value in _mapping(event.get("headers")).items():
            if isinstance(value, str):
                headers[str(name).lower()] = value
        request_context = _mapping(event.get("requestContext"))
        path = event.get("path") or event.get("resource")
        method = event.get("httpMethod")
        request_id = request_context.get("requestId") or getattr(context, "aws_request_id", None)
        flag = event.get("isBase64Encoded")
        return cls(
            method=method.upper() if isinstance(method, str) else "",
            path=(path if isinstance(path, str) else "/").rstrip("/") or "/",
            headers=headers,
            body=event.get("body"),
            is_base64=flag is True or (isinstance(flag, str) and flag.lower() == "true"),
            request_id=request_id if isinstance(request_id, str) else "-",
        )

    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def body_bytes(self) -> bytes:
        """The raw body; API Gateway base64-encodes it when the content type is one of its binary media types."""
        if self.body is None:
            return b""
        if not isinstance(self.body, str):
            raise BadRequest("the request body is not text or base64")
        if not self.is_base64:
            return self.body.encode("utf-8", "replace")
        try:
            return base64.b64decode(self.body, validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadRequest("the body is not valid base64") from e


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# --- routes ---------------------------------------------------------------------------------------------------------

Route = Callable[[Request], dict[str, Any]]
ROUTES: dict[str, dict[str, Route]] = {}


def route(method: str, path: str) -> Callable[[Route], Route]:
    """Register a function for ``method path``."""

    def register(func: Route) -> Route:
        ROUTES.setdefault(path, {})[method] = func
        return func

    return register


def json_response(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": JSON, **(headers or {})},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }


def endpoint_name() -> str:
    try:
        return os.environ[ENDPOINT_NAME_ENV]
    except KeyError as e:
        raise ApiError("the API is not configured") from e  # the log line names the missing variable


@route("POST", "/count")
def count(request: Request) -> dict[str, Any]:
    """The object count of the photo in the body."""
    content_type = request.content_type()
    if content_type not in SIGNATURES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'!r} is not supported: send {' or '.join(SIGNATURES)}"
        )
    body = request.body_bytes()
    if not body:
        raise BadRequest("the request body is empty: send the image bytes")
    if len(body) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"the image is {len(body):,} bytes: the limit is {MAX_IMAGE_BYTES:,} bytes")
    sniffed = next((kind for kind, magic in SIGNATURES.items() if body.startswith(magic)), None)
    if sniffed is None:
        raise BadRequest(f"the body is not a JPEG or PNG image ({len(body):,} bytes)")
    request.log_fields.update(image_bytes=len(body), image_type=sniffed)
    started = time.perf_counter()
    try:
        result = invoke_endpoint(endpoint_name(), body, sniffed)
    finally:
        request.log_fields["endpoint_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return json_response(HTTPStatus.OK, result)


@route("GET", "/health")
def health(request: Request) -> dict[str, Any]:
    """The endpoint's name and status; 503 unless it is InService."""
    name = endpoint_name()
    status = endpoint_status(name)
    if status != IN_SERVICE:
        raise NotDeployed(not_deployed_message(name, status), fields={"endpoint": name, "status": status or "NotFound"})
    return json_response(HTTPStatus.OK, {"endpoint": name, "status": status})


# --- the endpoint, and what its failures mean for the client -------------------------------------------------------


def invoke_endpoint(name: str, body: bytes, content_type: str) -> dict[str, Any]:
    """The endpoint's answer, checked: ``{"count": 1..5, ...}``."""
    try:
        response = runtime_client().invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=JSON)
        payload = response["Body"].read()
    except ClientError as e:
        raise endpoint_error(e, name) from e
    except BotoCoreError as e:  # timeouts, connection failures
        raise ModelFailed("the model endpoint did not answer") from e
    try:
        result = json.loads(payload)
        valid = isinstance(result, dict) and result.get("count") in COUNTS
    except ValueError:
        valid = False
    if not valid:
        raise ModelFailed("the model endpoint returned an invalid response")
    return result


def endpoint_error(e: ClientError, name: str) -> ApiError:
    """What an InvokeEndpoint failure means for the client."""
    code = e.response.get("Error", {}).get("Code", "")
    http_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "ModelError":
        original = e.response.get("OriginalStatusCode")
        if isinstance(original, int) and 400 <= original < 500:  # the handler refused the image: the client's mistake
            detail = client_detail(e.response.get("OriginalMessage")) or "the model refused the image"
            try:
                return ApiError(detail, status=original)
            except ValueError:  # not a status http.HTTPStatus knows
                return BadRequest(detail)
        return ModelFailed("the model failed to process the image")
    if code in THROTTLING_CODES:
        return Throttled("too many requests: retry in a moment")
    if code == "ModelNotReadyException":
        return NotDeployed(f"the model of endpoint {name} is not ready: {NOT_DEPLOYED_HINT}")
    if code == "ValidationError" and "not found" in e.response.get("Error", {}).get("Message", ""):
        try:
            status = endpoint_status(name)
        except ApiError:
            status = None
        return NotDeployed(
            not_deployed_message(name, status), fields={"endpoint": name, "status": status or "NotFound"}
        )
    if code == "ServiceUnavailable":
        return NotDeployed("SageMaker is unavailable right now: retry in a moment")
    if http_status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return PayloadTooLarge("the image is too large for the endpoint")
    return ModelFailed("the model endpoint could not be called")


def endpoint_status(name: str) -> str | None:
    """The endpoint's status (``InService``, ``Creating``...), or None when there is no such endpoint."""
    try:
        return sagemaker_client().describe_endpoint(EndpointName=name)["EndpointStatus"]
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "ValidationException":  # "Could not find endpoint ..."
            return None
        if code in THROTTLING_CODES:
            raise Throttled("too many requests: retry in a moment") from e
        raise ModelFailed("could not read the endpoint's status") from e
    except BotoCoreError as e:
        raise ModelFailed("could not read the endpoint's status") from e


def not_deployed_message(name: str, status: str | None) -> str:
    if status is None:
        return f"the model endpoint {name} does not exist: {NOT_DEPLOYED_HINT}"
    return f"the model endpoint {name} is {status}, not {IN_SERVICE}: {NOT_DEPLOYED_HINT}"


def client_detail(original_message: object) -> str | None:
    """The handler's own message from the model's 4xx body: ``{"error": ...}`` from ``bincount serve`` (the project's
    image), or the first line of the serving toolkit's text (a traceback follows it) from the prebuilt image."""
    if not isinstance(original_message, str):
        return None
    text = original_message.strip()
    if text.startswith("{"):
        try:
            error = json.loads(text).get("error")
        except (ValueError, AttributeError):
            return None
        if not isinstance(error, str) or not error.strip():
            return None
        return error.strip()[:MAX_DETAIL_CHARS]
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not line or line.startswith(("<", "Traceback")):
        return None
    return line[:MAX_DETAIL_CHARS]


# --- the handler ----------------------------------------------------------------------------------------------------


def dispatch(request: Request) -> dict[str, Any]:
    methods = ROUTES.get(request.path)
    if methods is None:
        raise NotFound(f"no route {request.path}: use POST /count or GET /health")
    func = methods.get(request.method)
    if func is None:
        allowed = ", ".join(sorted(methods))
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}: use {allowed}", headers={"Allow": allowed}
        )
    return func(request)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for API Gateway REST proxy events."""
    started = time.perf_counter()
    request = Request.from_event(event, context)
    fields: dict[str, Any] = {
        "request_id": request.request_id,
        "lambda_request_id": getattr(context, "aws_request_id", None),
        "method": request.method,
        "path": request.path,
    }
    try:
        response = dispatch(request)
    except ApiError as e:
        response = json_response(e.status, {"error": e.message, **e.fields}, e.headers)
        fields["error"] = e.message
        if e.__cause__ is not None:  # for the operator only
            fields["cause"] = f"{type(e.__cause__).__name__}: {e.__cause__}"[:MAX_CAUSE_CHARS]
    except Exception:
        log.exception("unhandled error", extra={"fields": fields})
        response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
    response["headers"]["X-Request-Id"] = request.request_id
    fields.update(request.log_fields)
    fields.update(status=response["statusCode"], duration_ms=round((time.perf_counter() - started) * 1000, 1))
    log.log(logging.ERROR if response["statusCode"] >= 500 else logging.INFO, "request", extra={"fields": fields})
    return response
