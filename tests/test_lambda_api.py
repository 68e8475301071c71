"""The API's Lambda driven with API Gateway REST proxy events: every documented status (DESIGN.md §5) produced by
the condition that should produce it. Behind it, the real handler and artifact on a local SageMaker endpoint over
HTTP; conditions only AWS itself can produce (throttling...) come from a stub answering in AWS's error shapes."""

from __future__ import annotations

import ast
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bincount import media
from bincount.local_api import LAMBDA_DIR, load_lambda_module
from bincount.local_endpoint import ContainerModel, Endpoint, LocalSageMaker
from tests.serving_helpers import (
    BROKEN_PROGRAM,
    ENDPOINT,
    CannedResponse,
    StubAws,
    aws_error,
    broken_artifact,
    encode,
    photo,
    photo_bytes,
    png_header_only,
    point_lambda_at,
    reset_clients,
    rest_event,
)

api = load_lambda_module("api")
NOT_DEPLOYED = "run the training pipeline first"


class LambdaContext:
    aws_request_id = "lambda-request-0001"
    function_name = "bincount-api"


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.handler(event, LambdaContext())
    assert response["isBase64Encoded"] is False
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def assert_error(status: int, body: dict[str, Any], expected_status: int, *fragments: str) -> None:
    assert status == expected_status, body
    assert isinstance(body["error"], str)
    for fragment in fragments:
        assert fragment in body["error"]
    text = json.dumps(body)
    for internal in ("Traceback", "boom", "secret", "botocore", 'File "'):
        assert internal not in text, f"internal detail {internal!r} leaked to the client: {text}"


@pytest.fixture(scope="module")
def sagemaker(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSageMaker]:
    broken = broken_artifact(model_dir, tmp_path_factory.mktemp("broken"))
    endpoints = [
        Endpoint(ENDPOINT, ContainerModel(model_dir, name=ENDPOINT)),
        Endpoint("broken", ContainerModel(broken, name="broken", program=BROKEN_PROGRAM)),
        Endpoint("creating", status="Creating"),
    ]
    with LocalSageMaker(endpoints) as server:
        yield server


@pytest.fixture(autouse=True)
def aws(sagemaker: LocalSageMaker, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point_lambda_at(api, sagemaker.url, monkeypatch)
    yield
    reset_clients(api)


class LogCapture(logging.Handler):
    """The Lambda's log lines, formatted by its own formatter and parsed back."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(api.JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    capture = LogCapture()
    api.log.addHandler(capture)
    yield capture.lines
    api.log.removeHandler(capture)


# --- 200 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(photo_bytes(11), "image/jpeg"), (encode(photo(11), "PNG"), "image/png")],
    ids=["jpeg", "png"],
)
def test_a_real_photo_gives_200_and_a_count(body: bytes, content_type: str) -> None:
    status, answer, headers = call(rest_event(body, content_type))
    assert status == 200, answer
    assert answer["count"] in range(1, 6)
    assert answer["confidence"] == max(answer["probabilities"].values())
    assert set(answer["probabilities"]) == {"1", "2", "3", "4", "5"}
    assert headers["X-Request-Id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "image/jpeg"},
        {"CONTENT-TYPE": "IMAGE/JPEG; charset=binary"},
    ],
    ids=["lower-case", "upper-case-with-parameter"],
)
def test_headers_are_read_case_insensitively(headers: dict[str, str]) -> None:
    event = rest_event(photo_bytes(12), None, headers=headers)
    for only in ("headers", "multiValueHeaders"):  # API Gateway sends both; either one is enough
        status, answer, _ = call({**event, ("multiValueHeaders" if only == "headers" else "headers"): None})
        assert status == 200, (only, answer)


# --- 400 / 413 / 415: refused before the endpoint is paid for -----------------------------------------------------


@pytest.mark.parametrize(
    ("event", "status", "fragment"),
    [
        (rest_event(None), 400, "the request body is empty"),
        (rest_event(b""), 400, "the request body is empty"),
        (rest_event(b"hello, world"), 400, "not a JPEG or PNG image"),
        (rest_event(encode(photo(1), "GIF")), 400, "not a JPEG or PNG image"),
        (rest_event("***not base64***"), 400, "not valid base64"),
        (rest_event(photo_bytes(1), base64_encoded=False), 400, "not a JPEG or PNG image"),  # no binary media types
        (rest_event(b"\xff\xd8\xff" + bytes(media.MAX_API_IMAGE_BYTES)), 413, "the limit is 4,500,000 bytes"),
        (rest_event(photo_bytes(1), "text/plain"), 415, "'text/plain' is not supported: send image/jpeg or image/png"),
        (rest_event(photo_bytes(1), None), 415, "'(none)' is not supported"),
        (rest_event(photo_bytes(1), "image/gif"), 415, "'image/gif' is not supported"),
        (rest_event(photo_bytes(1), "application/x-image"), 415, "'application/x-image' is not supported"),
    ],
    ids=[
        "no-body",
        "empty-body",
        "text",
        "gif",
        "bad-base64",
        "not-base64-encoded",
        "too-large",
        "text-type",
        "no-type",
        "gif-type",
        "x-image-type",
    ],
)
def test_cheap_checks_refuse_without_calling_the_endpoint(
    sagemaker: LocalSageMaker, event: dict[str, Any], status: int, fragment: str
) -> None:
    before = sum(sagemaker.invocations.values())
    assert_error(*call(event)[:2], status, fragment)
    assert sum(sagemaker.invocations.values()) == before


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (photo_bytes(2)[:8000], "image/jpeg", 400, "the JPEG image data is truncated or corrupt"),
        (png_header_only(8000, 8000), "image/png", 413, "8000x8000 = 64,000,000 pixels"),
    ],
    ids=["corrupt-jpeg", "decompression-bomb"],
)
def test_what_only_the_model_can_see_comes_back_as_its_4xx(
    sagemaker: LocalSageMaker, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    before = sagemaker.invocations[ENDPOINT]
    assert_error(*call(rest_event(body, content_type))[:2], status, fragment)
    assert sagemaker.invocations[ENDPOINT] == before + 1  # the endpoint's ModelError with a 4xx, not a 502


# --- 429 / 502 / 503: the endpoint's failures -------------------------------------------------------------------


def test_a_crashing_model_is_a_502_without_its_details(monkeypatch: pytest.MonkeyPatch, logs) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "broken")
    status, body, _ = call(rest_event(photo_bytes(3)))
    assert_error(status, body, 502, "the model failed to process the image")


@pytest.mark.parametrize(
    ("canned", "status", "fragment", "attempts"),
    [
        (aws_error(400, "ThrottlingException", "Rate exceeded"), 429, "too many requests", 2),
        (aws_error(429, "ModelNotReadyException", "Model not ready"), 503, NOT_DEPLOYED, 1),
        (aws_error(500, "InternalFailure", "internal failure, secret detail"), 502, "could not be called", 2),
        (CannedResponse(200, b"<html>secret</html>"), 502, "returned an invalid response", 1),
        (CannedResponse(200, {"count": 9}), 502, "returned an invalid response", 1),
    ],
    ids=["throttled", "model-not-ready", "internal-failure", "not-json", "count-out-of-range"],
)
def test_aws_failures_map_to_documented_statuses(
    monkeypatch: pytest.MonkeyPatch, canned: CannedResponse, status: int, fragment: str, attempts: int
) -> None:
    with StubAws(canned) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", stub.url)
        assert_error(*call(rest_event(photo_bytes(3)))[:2], status, fragment)
    assert len(stub.requests) == attempts  # retried once when AWS says it is transient
    assert all(path == f"/endpoints/{ENDPOINT}/invocations" for _, path, _ in stub.requests)


@pytest.mark.parametrize(
    ("endpoint", "fragment", "endpoint_status"),
    [
        ("no-such-endpoint", "the model endpoint no-such-endpoint does not exist: ", "NotFound"),
        ("creating", "the model endpoint creating is Creating, not InService: ", "Creating"),
    ],
)
def test_an_endpoint_not_in_service_is_a_503(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, fragment: str, endpoint_status: str
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", endpoint)
    for event in (rest_event(photo_bytes(4)), rest_event(None, None, method="GET", path="/health")):
        status, body, _ = call(event)
        assert_error(status, body, 503, fragment, NOT_DEPLOYED)
        assert body["endpoint"] == endpoint
        assert body["status"] == endpoint_status


# --- /health, routing, configuration ----------------------------------------------------------------------------


def test_health_names_the_endpoint_and_its_status() -> None:
    status, body, _ = call(rest_event(None, None, method="GET", path="/health"))
    assert (status, body) == (200, {"endpoint": ENDPOINT, "status": "InService"})


def test_health_when_aws_throttles(monkeypatch: pytest.MonkeyPatch) -> None:
    with StubAws(CannedResponse(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})) as stub:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", stub.url)
        assert_error(*call(rest_event(None, None, method="GET", path="/health"))[:2], 429, "too many requests")


def test_unknown_route_is_404() -> None:
    assert_error(*call(rest_event(None, None, method="GET", path="/counts"))[:2], 404, "use POST /count or GET /health")


def test_wrong_method_is_405_with_allow() -> None:
    status, body, headers = call(rest_event(None, None, method="GET", path="/count"))
    assert_error(status, body, 405, "GET is not allowed on /count")
    assert headers["Allow"] == "POST"


def test_trailing_slash_is_the_same_route() -> None:
    assert call(rest_event(photo_bytes(5), path="/count/"))[0] == 200


def test_missing_configuration_is_a_500_that_says_nothing_more(monkeypatch: pytest.MonkeyPatch, logs) -> None:
    monkeypatch.delenv("ENDPOINT_NAME")
    assert_error(*call(rest_event(photo_bytes(5)))[:2], 500, "the API is not configured")
    assert "ENDPOINT_NAME" in logs[-1]["cause"]


def test_an_unexpected_bug_is_a_500_with_a_logged_traceback(monkeypatch: pytest.MonkeyPatch, logs) -> None:
    def bug(request):
        raise ZeroDivisionError("secret internal state")

    monkeypatch.setitem(api.ROUTES["/count"], "POST", bug)
    assert_error(*call(rest_event(photo_bytes(5)))[:2], 500, "internal error")
    assert "ZeroDivisionError" in logs[0]["exception"]
    assert logs[-1]["status"] == 500


# --- logs -------------------------------------------------------------------------------------------------------


def test_each_request_logs_one_json_line_with_ids_and_timings(logs) -> None:
    call(rest_event(photo_bytes(6)))
    (line,) = logs
    assert line["level"] == "INFO"
    assert line["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert line["lambda_request_id"] == "lambda-request-0001"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/count", 200)
    assert line["image_type"] == "image/jpeg"
    assert line["image_bytes"] == len(photo_bytes(6))
    assert 0 < line["endpoint_ms"] <= line["duration_ms"]


def test_the_cause_of_an_error_is_logged_not_returned(monkeypatch: pytest.MonkeyPatch, logs) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "broken")
    call(rest_event(photo_bytes(3)))
    (line,) = logs
    assert line["level"] == "ERROR"
    assert line["status"] == 502
    assert "ModelError" in line["cause"] and "boom" in line["cause"]


def test_logs_go_to_stdout_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    stdout_handler = api.log.handlers[0]
    previous = stdout_handler.setStream(sys.stdout)  # pytest swapped sys.stdout after the module was imported
    try:
        call(rest_event(None, None, method="GET", path="/health"))
    finally:
        stdout_handler.setStream(previous)
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["message"] == "request" and line["status"] == 200


# --- the Lambda is deployed alone: its copy of the limits must match the project's -----------------------------


def test_the_lambda_checks_what_the_endpoint_accepts() -> None:
    assert tuple(api.SIGNATURES) == media.API_CONTENT_TYPES
    assert {api.SIGNATURES[t]: t for t in api.SIGNATURES} == {
        magic: kind[1] for magic, kind in media.SIGNATURES.items()
    }
    assert api.MAX_IMAGE_BYTES == media.MAX_API_IMAGE_BYTES < media.MAX_PAYLOAD_BYTES
    assert api.MAX_IMAGE_BYTES * 4 / 3 < 6 * 2**20 - 64 * 1024  # base64 in Lambda's 6 MB, with room for headers
    assert set(api.COUNTS) == {1, 2, 3, 4, 5}


def test_the_lambda_imports_boto3_and_the_standard_library_only() -> None:
    tree = ast.parse((LAMBDA_DIR / "api.py").read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - set(sys.stdlib_module_names) == {"boto3", "botocore"}


# --- time: within API Gateway's 29 s ----------------------------------------------------------------------------


def test_the_worst_case_answers_before_api_gateway_gives_up() -> None:
    from botocore.retries.standard import ExponentialBackoff

    # The longest wait before botocore's standard mode retries: a throttling backoff of at most 1 s on the first
    # retry, raised by an x-amz-retry-after header to at most 5 s more.
    first_retry_delay = (
        ExponentialBackoff._DEFAULT_BACKOFF_CONFIG["throttling_base_scale"] * ExponentialBackoff._BASE**0
    )
    assert first_retry_delay + ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL <= api.MAX_RETRY_DELAY_S

    def worst(config: Any) -> float:
        attempts = config.retries["total_max_attempts"]
        return attempts * (config.connect_timeout + config.read_timeout) + (attempts - 1) * api.MAX_RETRY_DELAY_S

    # A POST /count: InvokeEndpoint with its retry, then one DescribeEndpoint when the endpoint is reported missing.
    worst_case = worst(api.INVOKE_CONFIG) + worst(api.DESCRIBE_CONFIG)
    assert worst_case == api.HANDLER_WORST_CASE_S == 25
    assert worst_case + 2 <= api.TIMEOUT_S <= api.API_GATEWAY_TIMEOUT_S - 2


def test_the_clients_use_those_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_clients(api)
    try:
        for client, config in (
            (api.runtime_client(), api.INVOKE_CONFIG),
            (api.sagemaker_client(), api.DESCRIBE_CONFIG),
        ):
            used = client.meta.config
            assert (used.connect_timeout, used.read_timeout, used.retries) == (
                config.connect_timeout,
                config.read_timeout,
                config.retries,
            )
    finally:
        reset_clients(api)
