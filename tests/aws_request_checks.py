"""Record the AWS requests made while a test runs and check each against botocore's service model (no tests here).

botocore's own validation (on by default in every client) checks required and unknown members and types; it checks
no enum, no maximum and no ``pattern``. :func:`request_errors` adds those, so a request the tests accept is one AWS
would accept too. Patterns are the services' Java regexes, read with the ``regex`` module.

:class:`RequestRecorder` patches ``BaseClient._make_api_call`` for the test, so it sees the requests of moto's Step
Functions interpreter (whose tasks call moto through boto3 clients) exactly as they were sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.client import BaseClient
from botocore.model import Shape


@cache
def _service(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


# Java writes characters beyond the BMP as UTF-16 surrogate pairs (Application Auto Scaling's ids): code points here.
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"


@cache
def _pattern(text: str) -> Any:
    return regex.compile(text.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010FFFF"))


def request_errors(service: str, operation: str, request: Mapping[str, Any]) -> list[str]:
    """What in ``request`` AWS would refuse for ``service``'s ``operation``; empty when valid."""
    errors: list[str] = []
    _check(_service(service).operation_model(operation).input_shape, request, operation, errors)
    return errors


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected an object, got {value!r}")
            return
        for name, item in value.items():
            if name not in shape.members:
                errors.append(f"{path}: unknown member {name!r}")
            else:
                _check(shape.members[name], item, f"{path}.{name}", errors)
        errors.extend(f"{path}: missing {name!r}" for name in shape.required_members if name not in value)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {value!r}")
            return
        _size(meta, len(value), path, errors)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", errors)
    elif kind == "map":
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a map, got {value!r}")
            return
        _size(meta, len(value), path, errors)
        for key, item in value.items():
            _check(shape.key, key, f"{path} key {key!r}", errors)
            _check(shape.value, item, f"{path}[{key!r}]", errors)
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
            return
        _size(meta, len(value), path, errors)
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "pattern" in meta and _pattern(meta["pattern"]).fullmatch(value) is None:
            errors.append(f"{path}: {value!r} does not match {meta['pattern']!r}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
            return
        _range(meta, value, path, errors)
    elif kind in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: expected a number, got {value!r}")
            return
        _range(meta, value, path, errors)
    elif kind == "boolean" and not isinstance(value, bool):
        errors.append(f"{path}: expected true or false, got {value!r}")


def _size(meta: Mapping[str, Any], size: int, path: str, errors: list[str]) -> None:
    if size < meta.get("min", 0) or ("max" in meta and size > meta["max"]):
        errors.append(f"{path}: size {size} outside {meta.get('min', 0)}..{meta.get('max', '')}")


def _range(meta: Mapping[str, Any], value: float, path: str, errors: list[str]) -> None:
    if ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]):
        errors.append(f"{path}: {value} outside {meta.get('min', '')}..{meta.get('max', '')}")


@dataclass
class Request:
    service: str  # botocore's name: sagemaker, application-autoscaling, stepfunctions...
    operation: str
    params: dict[str, Any]


@dataclass
class RequestRecorder:
    """Every request of every boto3 client while installed."""

    requests: list[Request] = field(default_factory=list)

    def install(self, monkeypatch: Any) -> RequestRecorder:
        original = BaseClient._make_api_call
        recorded = self.requests

        def record(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            recorded.append(Request(client.meta.service_model.service_name, operation, dict(params)))
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", record)
        return self

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of each request of ``operation``, in order."""
        return [r.params for r in self.requests if r.operation == operation]

    def invalid(self) -> list[str]:
        """Every problem of every recorded request."""
        return [
            f"{r.service} {r.operation}: {error}"
            for r in self.requests
            for error in request_errors(r.service, r.operation, r.params)
        ]
