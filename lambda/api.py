"""The API's routes (docs/design.md §5): ``POST /count`` (the raw JPEG or PNG as the body) and ``GET /health``,
the SageMaker endpoint's count out.

Deployed alone (the ``lambda/`` folder, handler ``api.handler``), so it imports boto3, the standard library and its
HTTP layer (:mod:`resolver`: request parsing, typed errors, declared routes, JSON logs) only. What it checks cheaply
before paying for an endpoint call mirrors ``bincount/serving/media.py`` (the tests keep the two in step; see
docs/adr/0002-lambda-copies-input-checks.md).
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from http import HTTPStatus
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from resolver import (
    JSON,
    ApiError,
    BadRequest,
    JsonFormatter,
    ModelFailed,
    NotDeployed,
    PayloadTooLarge,
    Request,
    Resolver,
    Throttled,
    UnsupportedMediaType,
    json_response,
    log,
)

__all__ = ["JsonFormatter", "app", "handler", "log"]

ENDPOINT_NAME_ENV = "ENDPOINT_NAME"
JPEG = "image/jpeg"
PNG = "image/png"
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

app = Resolver()
ROUTES = app.routes
"""The declared routes by path and method."""


# --- AWS clients (created on first use, reused while the Lambda stays warm) ----------------------------------------


@cache
def runtime_client() -> Any:
    """sagemaker-runtime; ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` may point it at a local endpoint."""
    return boto3.client("sagemaker-runtime", config=INVOKE_CONFIG)


@cache
def sagemaker_client() -> Any:
    """The SageMaker control plane, for DescribeEndpoint."""
    return boto3.client("sagemaker", config=DESCRIBE_CONFIG)


# --- routes ---------------------------------------------------------------------------------------------------------


def endpoint_name() -> str:
    try:
        return os.environ[ENDPOINT_NAME_ENV]
    except KeyError as e:
        raise ApiError("the API is not configured") from e  # the log line names the missing variable


@app.route("POST", "/count")
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


@app.route("GET", "/health")
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


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point for API Gateway REST proxy events."""
    return app.resolve(event, context)
