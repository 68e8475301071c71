"""Check a request against AWS's own definition of the API: botocore's service model (no tests here).

botocore validates only part of what AWS does (required members, unknown members, types, minimum lengths): it
checks no maximum, no enum and no ``pattern``. :func:`request_errors` checks them all, each pattern matched against
the whole value (AWS's services match them in full), so a request the tests accept is one AWS accepts too.

Patterns are the service's Java regexes (``\\p{L}`` and friends); the ``regex`` module reads them.

:func:`task_request_errors` checks what a Task state sends: :func:`operation_of` maps its ``Resource`` to the API
it calls, for the optimized integrations (``arn:aws:states:::sagemaker:createModel``, ``...:createTrainingJob.sync``,
``sns:publish``) and the ``aws-sdk`` tasks (``arn:aws:states:::aws-sdk:s3:copyObject``) alike. Step Functions spells
every member in PascalCase, even where the API itself uses camelCase (``sfn:describeMapRun`` takes ``MapRunArn`` for
the API's ``mapRunArn``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

# Service names in Step Functions resources -> botocore's, where they differ.
_SERVICE_NAMES = {
    "sfn": "stepfunctions",
    "states": "stepfunctions",  # the optimized integration arn:aws:states:::states:startExecution(.sync:2)
    "applicationautoscaling": "application-autoscaling",
}
# Service integration patterns a resource may end with; the request is the API's either way.
_PATTERNS = (".sync:2", ".sync", ".waitForTaskToken")
_RESOURCE_PREFIX = "arn:aws:states:::"


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    """botocore's model of one API operation (``service`` as botocore names it, ``operation`` in PascalCase)."""
    return _session().get_service_model(service).operation_model(operation)


def operation_of(resource: str) -> tuple[str, str]:
    """``(botocore service, Operation)`` a Task state's ``Resource`` calls."""
    if not resource.startswith(_RESOURCE_PREFIX):
        raise ValueError(f"not a service integration: {resource}")
    rest = resource.removeprefix(_RESOURCE_PREFIX).removeprefix("aws-sdk:")
    for suffix in _PATTERNS:
        rest = rest.removesuffix(suffix)
    service, _, action = rest.partition(":")
    return _SERVICE_NAMES.get(service, service), action[:1].upper() + action[1:]


def integration_request(resource: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What the API receives from a state's rendered ``Parameters``: the optimized SNS integration sends a JSON
    ``Message`` as its text, the optimized Step Functions integration a JSON ``Input``, the optimized Lambda
    integration a JSON ``Payload`` as its bytes."""
    request = dict(parameters)
    if resource.startswith(f"{_RESOURCE_PREFIX}sns:publish") and not isinstance(request.get("Message"), str):
        request["Message"] = json.dumps(request["Message"])
    # states:startExecution(.sync, .sync:2) takes its Input as JSON too and starts the execution with it as text.
    if resource.startswith(f"{_RESOURCE_PREFIX}states:startExecution") and not isinstance(request.get("Input"), str):
        request["Input"] = json.dumps(request.get("Input", {}))
    if resource.startswith(f"{_RESOURCE_PREFIX}lambda:invoke") and not isinstance(request.get("Payload"), bytes):
        request["Payload"] = json.dumps(request["Payload"]).encode()
    return request


# Java spells characters beyond the BMP as UTF-16 surrogate pairs (Application Auto Scaling's ids): code points here.
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"


@cache
def _pattern(text: str) -> regex.Pattern[str]:
    return regex.compile(text.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010FFFF"))


def request_errors(service: str, operation: str, request: Mapping[str, Any], *, pascal_case: bool = False) -> list[str]:
    """Everything in ``request`` that AWS would refuse for ``service``'s ``operation``; empty when it is valid.

    With ``pascal_case``, members are expected in PascalCase, as Step Functions spells them.
    """
    errors: list[str] = []
    _check(operation_model(service, operation).input_shape, request, operation, errors, pascal_case)
    return errors


def task_request_errors(resource: str, parameters: Mapping[str, Any]) -> list[str]:
    """What AWS would refuse in the request a Task state with this ``Resource`` sends with these ``Parameters``."""
    service, operation = operation_of(resource)
    errors = request_errors(service, operation, integration_request(resource, parameters), pascal_case=True)
    return [f"({service} {operation}) {error}" for error in errors]


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def _check(shape: Shape | None, value: Any, path: str, errors: list[str], pascal_case: bool = False) -> None:
    if shape is None:
        if value:
            errors.append(f"{path}: the operation takes no input")
        return
    check = _CHECKS.get(shape.type_name)
    if check is None:
        errors.append(f"{path}: no check for shape type {shape.type_name} ({shape.name})")
        return
    check(shape, value, path, errors, pascal_case)


def _check_structure(shape: StructureShape, value: Any, path: str, errors: list[str], pascal_case: bool) -> None:
    if not isinstance(value, Mapping):
        errors.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
        return
    members = {_pascal(name) if pascal_case else name: member for name, member in shape.members.items()}
    by_lower = {name.lower(): name for name in members}
    for name, member_value in value.items():
        if name in members:
            _check(members[name], member_value, f"{path}.{name}", errors, pascal_case)
        elif name.lower() in by_lower:
            errors.append(f"{path}: member {name!r} is spelled {by_lower[name.lower()]!r}")
        else:
            errors.append(f"{path}: unknown member {name!r} of {shape.name} (known: {', '.join(members)})")
    for name in shape.required_members:
        name = _pascal(name) if pascal_case else name
        if name not in value:
            errors.append(f"{path}: required member {name!r} of {shape.name} is missing")
    if shape.metadata.get("union") and len(value) != 1:
        errors.append(f"{path}: {shape.name} is a union: set exactly one member")


def _check_list(shape: ListShape, value: Any, path: str, errors: list[str], pascal_case: bool) -> None:
    if not isinstance(value, list):
        errors.append(f"{path}: expected a list ({shape.name}), got {type(value).__name__}")
        return
    _check_size(shape, len(value), f"{path} has {len(value)} items", errors)
    for i, item in enumerate(value):
        _check(shape.member, item, f"{path}[{i}]", errors, pascal_case)


def _check_map(shape: MapShape, value: Any, path: str, errors: list[str], pascal_case: bool) -> None:
    if not isinstance(value, Mapping):
        errors.append(f"{path}: expected a map ({shape.name}), got {type(value).__name__}")
        return
    _check_size(shape, len(value), f"{path} has {len(value)} entries", errors)
    for key, item in value.items():
        _check(shape.key, key, f"{path} key {key!r}", errors)
        _check(shape.value, item, f"{path}[{key!r}]", errors, pascal_case)


def _check_string(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if not isinstance(value, str):
        errors.append(f"{path}: expected a string ({shape.name}), got {type(value).__name__} {value!r}")
        return
    _check_size(shape, len(value), f"{path} {value!r} has {len(value)} characters", errors)
    if shape.enum and value not in shape.enum:
        errors.append(f"{path}: {value!r} is not one of {shape.name}'s values {shape.enum}")
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        try:
            compiled = _pattern(pattern)
        except regex.error as e:
            errors.append(f"{path}: cannot read {shape.name}'s pattern {pattern!r}: {e}")
            return
        if compiled.fullmatch(value) is None:
            errors.append(f"{path}: {value!r} does not match {shape.name}'s pattern {pattern!r} in full")


def _check_integer(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{path}: expected an integer ({shape.name}), got {type(value).__name__} {value!r}")
        return
    _check_range(shape, value, path, errors)


def _check_float(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors.append(f"{path}: expected a finite number ({shape.name}), got {type(value).__name__} {value!r}")
        return
    _check_range(shape, value, path, errors)


def _check_boolean(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if not isinstance(value, bool):
        errors.append(f"{path}: expected true or false ({shape.name}), got {type(value).__name__} {value!r}")


def _check_timestamp(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.append(f"{path}: expected a timestamp ({shape.name}), got {type(value).__name__}")


def _check_blob(shape: Shape, value: Any, path: str, errors: list[str], _: bool) -> None:
    if not isinstance(value, str | bytes):
        errors.append(f"{path}: expected a blob ({shape.name}), got {type(value).__name__}")
        return
    _check_size(shape, len(value), f"{path} has {len(value)} bytes", errors)


def _check_size(shape: Shape, size: int, what: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        errors.append(f"{what}: {shape.name} needs at least {low}")
    if high is not None and size > high:
        errors.append(f"{what}: {shape.name} allows at most {high}")


def _check_range(shape: Shape, value: float, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        errors.append(f"{path}: {value} is below {shape.name}'s minimum {low}")
    if high is not None and value > high:
        errors.append(f"{path}: {value} is above {shape.name}'s maximum {high}")


_CHECKS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "float": _check_float,
    "double": _check_float,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "blob": _check_blob,
}


def api_members(service: str, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """``request`` as Step Functions spells it (PascalCase members) with the API's own member names, as Step Functions
    passes it on (``MapRunArn`` -> ``mapRunArn``); members the API does not know are left as they are."""
    return _renamed(operation_model(service, operation).input_shape, request, to_api=True)


def step_functions_members(service: str, operation: str, response: Mapping[str, Any]) -> dict[str, Any]:
    """An API's ``response`` as Step Functions hands it to the state: every member in PascalCase
    (``itemCounts`` -> ``ItemCounts``)."""
    return _renamed(operation_model(service, operation).output_shape, response, to_api=False)


def _renamed(shape: Shape | None, value: Any, *, to_api: bool) -> Any:
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        renamed = {}
        for key, item in value.items():
            if to_api:
                name = {_pascal(n): n for n in shape.members}.get(key, key)
                renamed[name] = _renamed(shape.members.get(name), item, to_api=to_api)
            else:
                renamed[_pascal(key)] = _renamed(shape.members.get(key), item, to_api=to_api)
        return renamed
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_renamed(shape.member, item, to_api=to_api) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        return {key: _renamed(shape.value, item, to_api=to_api) for key, item in value.items()}
    return value
