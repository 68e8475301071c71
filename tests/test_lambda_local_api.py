"""The Lambda behind the local API Gateway, over real HTTP: the path a curl or the web page takes on the twin."""

from __future__ import annotations

import base64
import inspect
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bincount import media
from bincount.local_api import MAX_EVENT_BYTES, LocalApi, load_handler, load_lambda_module, proxy_event
from bincount.local_endpoint import LocalSageMaker
from tests.serving_helpers import ENDPOINT, encode, photo, photo_bytes, rest_event, set_aws_env

API_KEY = "local-test-key"
PAGE = b"<!doctype html><title>bincount</title>"


@pytest.fixture(scope="module")
def api_server() -> Iterator[LocalApi]:
    with LocalApi(load_handler(), api_key=API_KEY, pages={"/": (PAGE, "text/html")}) as server:
        yield server


@pytest.fixture(autouse=True)
def aws(sagemaker: LocalSageMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch, sagemaker.url)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    api = load_lambda_module("api")  # the module load_handler imported
    api.runtime_client.cache_clear()
    api.sagemaker_client.cache_clear()


def request(
    url: str, body: bytes | None = None, *, method: str = "POST", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(photo_bytes(20), "image/jpeg"), (encode(photo(20), "PNG"), "image/png")],
    ids=["jpeg", "png"],
)
def test_post_count_over_http(api_server: LocalApi, body: bytes, content_type: str) -> None:
    status, headers, payload = request(
        f"{api_server.url}/count", body, headers={"Content-Type": content_type, "x-api-key": API_KEY}
    )
    assert status == 200, payload
    assert headers["Content-Type"] == "application/json"
    assert json.loads(payload)["count"] in range(1, 6)


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_the_api_key_is_required(api_server: LocalApi, sagemaker: LocalSageMaker, key: str | None) -> None:
    before = sagemaker.invocations[ENDPOINT]
    headers = {"Content-Type": "image/jpeg"} | ({"x-api-key": key} if key else {})
    status, _, payload = request(f"{api_server.url}/count", photo_bytes(20), headers=headers)
    assert (status, json.loads(payload)) == (403, {"message": "Forbidden"})
    assert sagemaker.invocations[ENDPOINT] == before


def test_a_form_post_is_refused_with_415(api_server: LocalApi) -> None:
    """What ``curl --data-binary @photo.jpg`` sends without ``-H 'Content-Type: image/jpeg'``."""
    status, _, payload = request(
        f"{api_server.url}/count",
        photo_bytes(20),
        headers={"Content-Type": "application/x-www-form-urlencoded", "x-api-key": API_KEY},
    )
    assert status == 415
    assert json.loads(payload) == {
        "error": "Content-Type 'application/x-www-form-urlencoded' is not supported: send image/jpeg or image/png"
    }


def test_health_over_http(api_server: LocalApi) -> None:
    status, _, payload = request(f"{api_server.url}/health", method="GET", headers={"x-api-key": API_KEY})
    assert (status, json.loads(payload)) == (200, {"endpoint": ENDPOINT, "status": "InService"})


def test_an_event_over_lambdas_limit_never_reaches_the_function(api_server: LocalApi) -> None:
    body = b"\xff\xd8\xff" + bytes(MAX_EVENT_BYTES * 3 // 4)  # base64 makes the event larger than 6 MB
    status, _, payload = request(
        f"{api_server.url}/count", body, headers={"Content-Type": "image/jpeg", "x-api-key": API_KEY}
    )
    assert (status, json.loads(payload)) == (413, {"message": "Request Too Long"})


def test_a_failing_function_is_a_502_like_api_gateways() -> None:
    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("secret")

    with LocalApi(crash) as server:
        status, _, payload = request(f"{server.url}/count", b"x", headers={"Content-Type": "image/jpeg"})
    assert (status, json.loads(payload)) == (502, {"message": "Internal server error"})


def test_pages_are_served_beside_the_api(api_server: LocalApi) -> None:
    status, headers, payload = request(f"{api_server.url}/", method="GET")
    assert (status, headers["Content-Type"], payload) == (200, "text/html", PAGE)


# --- the events it builds have API Gateway's shape ---------------------------------------------------------------


def test_proxy_events_have_the_shape_of_api_gateways() -> None:
    ours = proxy_event(
        "POST",
        "/count?a=1&a=2&b=",
        [("Content-Type", "image/jpeg"), ("X-Multi", "1"), ("X-Multi", "2")],
        b"\xff\xd8\xff",
    )
    theirs = rest_event(b"\xff\xd8\xff")
    assert set(ours) == set(theirs)
    assert set(ours["requestContext"]) <= set(theirs["requestContext"]) | {"requestTimeEpoch"}
    assert (ours["httpMethod"], ours["path"], ours["resource"]) == ("POST", "/count", "/count")
    assert ours["isBase64Encoded"] is True
    assert base64.b64decode(ours["body"]) == b"\xff\xd8\xff"
    assert ours["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert ours["headers"]["X-Multi"] == "2"
    assert ours["queryStringParameters"] == {"a": "2", "b": ""}
    assert ours["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}


def test_the_local_api_encodes_bodies_as_the_stack_configures_the_rest_api() -> None:
    # One definition (bincount.media), read by the stack's RestApi and by the local API.
    snapshot = (
        Path(__file__).parent / "snapshots" / "bincount_template.json"
    )  # the template, as test_cdk_snapshot keeps it
    template = json.loads(snapshot.read_text(encoding="utf-8"))
    (api,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    local_default = inspect.signature(LocalApi).parameters["binary_media_types"].default
    assert tuple(api["Properties"]["BinaryMediaTypes"]) == media.API_BINARY_MEDIA_TYPES == local_default
    image = proxy_event("POST", "/count", [("Content-Type", "image/png")], b"\x89PNG")
    text = proxy_event("POST", "/count", [("Content-Type", "application/json")], b'{"a": 1}')
    assert (image["isBase64Encoded"], text["isBase64Encoded"], text["body"]) == (True, False, '{"a": 1}')


def test_text_bodies_pass_as_text_when_only_images_are_binary() -> None:
    event = proxy_event("POST", "/count", [("Content-Type", "text/plain")], b"hello", binary_media_types=["image/*"])
    assert (event["body"], event["isBase64Encoded"]) == ("hello", False)
    event = proxy_event("GET", "/health", [], b"")
    assert (event["body"], event["isBase64Encoded"], event["headers"]) == (None, False, None)
