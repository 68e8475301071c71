"""Property tests of the API's Lambda (issue 7): random bodies, random headers and random, malformed events never
make it raise, never get a 5xx for the client's mistake, and always get JSON with an "error" unless the answer is
200. Behind it, the real handler and artifact on a local SageMaker endpoint over loopback HTTP, so whatever passes
the Lambda's cheap checks is judged by the model's own checks (a 4xx), as it would be on AWS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bincount.local.api import load_lambda_module
from bincount.local.endpoint import ContainerModel, Endpoint, LocalSageMaker
from tests.support.serving import ENDPOINT, rest_event, set_aws_env

api = load_lambda_module("api")
CLIENT_STATUSES = {400, 404, 405, 413, 415}
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


class LambdaContext:
    aws_request_id = "lambda-request-0001"
    function_name = "bincount-api"


@pytest.fixture(scope="module", autouse=True)
def endpoint(model_dir: Path) -> Iterator[LocalSageMaker]:
    model = ContainerModel(model_dir, name=ENDPOINT)
    with LocalSageMaker([Endpoint(ENDPOINT, model)]) as server, pytest.MonkeyPatch.context() as monkeypatch:
        set_aws_env(monkeypatch, server.url)
        monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
        monkeypatch.setenv("LOG_LEVEL", "WARNING")
        api.runtime_client.cache_clear()
        api.sagemaker_client.cache_clear()
        level = api.log.level
        api.log.setLevel("WARNING")  # hundreds of request lines would drown the report
        yield server
        api.log.setLevel(level)
        api.runtime_client.cache_clear()
        api.sagemaker_client.cache_clear()


def answer(event: Any) -> tuple[int, dict[str, Any]]:
    """The handler's response, checked for shape: a status, JSON, and an "error" string unless 200."""
    response = api.handler(event, LambdaContext())
    status = response["statusCode"]
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert isinstance(body, dict)
    if status != 200:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert "Traceback" not in body["error"]
    return status, body


MAGIC = st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"{"])
BODIES = st.builds(lambda magic, rest: magic + rest, MAGIC, st.binary(max_size=2048))
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(["image/jpeg", "image/png", "IMAGE/PNG; q=1", "application/json", "text/plain", "image/gif", ""]),
    st.text(max_size=40),
)


@PROPERTY
@given(body=BODIES, content_type=CONTENT_TYPES, encoded=st.booleans())
def test_random_bodies_are_refused_as_the_clients_mistake(body: bytes, content_type: str | None, encoded: bool) -> None:
    status, result = answer(rest_event(body, content_type, base64_encoded=encoded))
    assert status == 200 or status in CLIENT_STATUSES, result


HEADER_NAMES = st.one_of(
    st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE", "x-api-key", "Accept", "Content-Length"]),
    st.text(min_size=1, max_size=20),
)
HEADER_VALUES = st.one_of(st.text(max_size=60), st.sampled_from(["image/jpeg", "image/png", "*/*", ""]))


@PROPERTY
@given(
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=8),
    body=st.one_of(st.none(), st.binary(max_size=256)),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "post"]),
    path=st.sampled_from(["/count", "/count/", "/health", "/", "/counts", "/count/extra", "//count"]),
)
def test_random_headers_methods_and_paths_never_fail_the_handler(
    headers: dict[str, str], body: bytes | None, method: str, path: str
) -> None:
    event = rest_event(body, None, method=method, path=path, headers=headers)
    status, result = answer(event)
    assert status == 200 or status in CLIENT_STATUSES, result


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.text(max_size=10), st.integers()), max_size=3),
)
EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "httpMethod": st.one_of(st.sampled_from(["POST", "GET"]), JUNK),
        "path": st.one_of(st.sampled_from(["/count", "/health"]), JUNK),
        "resource": JUNK,
        "headers": st.one_of(st.just({"Content-Type": "image/jpeg"}), JUNK),
        "multiValueHeaders": st.one_of(st.just({"Content-Type": ["image/png"]}), JUNK),
        "body": st.one_of(st.just(base64.b64encode(b"\xff\xd8\xff\xe0 not really").decode()), JUNK),
        "isBase64Encoded": st.one_of(st.sampled_from([True, False, "true", "false", 1, 0]), JUNK),
        "requestContext": JUNK,
        "queryStringParameters": JUNK,
    },
)


@PROPERTY
@given(event=st.one_of(EVENTS, JUNK))
def test_malformed_events_are_answered_not_raised(event: Any) -> None:
    status, result = answer(event)
    # /health may legitimately answer 200; everything else in a malformed event is the caller's mistake.
    assert status == 200 or status in CLIENT_STATUSES, (event, result)
