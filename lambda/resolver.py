"""The Lambda's small HTTP layer (stdlib only): API Gateway REST proxy events in, proxy responses out.

- :class:`Request`: what a route needs from an event, read leniently.
- :class:`ApiError` and its subclasses: typed failures whose class fixes the status code.
- :class:`Resolver`: routes declared with ``@app.route(method, path)``; :meth:`Resolver.resolve` is the one place
  that turns an :class:`ApiError` into ``{"error": "..."}`` (anything else into a 500) and logs one JSON line per
  request. Internal details (stack traces, AWS messages) go to the logs only.
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
from http import HTTPStatus
from typing import Any

JSON = "application/json"
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


# --- the request and the response -----------------------------------------------------------------------------------


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


def json_response(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": JSON, **(headers or {})},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }


# --- the resolver ---------------------------------------------------------------------------------------------------

Route = Callable[[Request], dict[str, Any]]


class Resolver:
    """Declared routes (``@app.route("POST", "/count")``) and the one place errors become responses."""

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, Route]] = {}

    def route(self, method: str, path: str) -> Callable[[Route], Route]:
        """Register a function for ``method path``."""

        def register(func: Route) -> Route:
            self.routes.setdefault(path, {})[method] = func
            return func

        return register

    def dispatch(self, request: Request) -> dict[str, Any]:
        methods = self.routes.get(request.path)
        if methods is None:
            known = " or ".join(f"{m} {p}" for p, ms in self.routes.items() for m in sorted(ms))
            raise NotFound(f"no route {request.path}: use {known}")
        func = methods.get(request.method)
        if func is None:
            allowed = ", ".join(sorted(methods))
            raise MethodNotAllowed(
                f"{request.method} is not allowed on {request.path}: use {allowed}", headers={"Allow": allowed}
            )
        return func(request)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """The proxy response for one event; logs one JSON line (``request``) with the status and timings."""
        started = time.perf_counter()
        request = Request.from_event(event, context)
        fields: dict[str, Any] = {
            "request_id": request.request_id,
            "lambda_request_id": getattr(context, "aws_request_id", None),
            "method": request.method,
            "path": request.path,
        }
        try:
            response = self.dispatch(request)
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
