"""The local SageMaker endpoint over real HTTP: boto3's sagemaker-runtime and sagemaker clients, pointed at it with
``AWS_ENDPOINT_URL_*``, get the answers and the error shapes the real service gives, whichever image serves the
model: the project's (``bincount serve``) or AWS's prebuilt one (its serving toolkit)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from bincount.labels import COUNTS
from bincount.local_endpoint import ContainerModel, Endpoint, LocalSageMaker, ServedModel
from tests.serving_helpers import ENDPOINT, encode, photo, photo_bytes, png_header_only, set_aws_env


@pytest.fixture(scope="module", params=["project", "prebuilt"])
def sagemaker(request: pytest.FixtureRequest, model_dir: Path) -> Iterator[LocalSageMaker]:
    """The endpoint served by the image ``servingImage`` names: ``bincount serve`` or AWS's serving toolkit."""
    if request.param == "project":
        model: ServedModel | ContainerModel = request.getfixturevalue("served_model")
    else:
        model = ContainerModel(model_dir, name=ENDPOINT)
    with LocalSageMaker([Endpoint(ENDPOINT, model), Endpoint("creating", status="Creating")]) as server:
        yield server


@pytest.fixture
def runtime(sagemaker: LocalSageMaker, monkeypatch: pytest.MonkeyPatch):
    set_aws_env(monkeypatch, sagemaker.url)
    return boto3.client("sagemaker-runtime")


@pytest.mark.parametrize(
    ("body", "content_type"), [(photo_bytes(9), "image/jpeg"), (encode(photo(9), "PNG"), "image/png")]
)
def test_invoke_endpoint_answers_a_count(runtime, body: bytes, content_type: str) -> None:
    response = runtime.invoke_endpoint(
        EndpointName=ENDPOINT, Body=body, ContentType=content_type, Accept="application/json"
    )
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(response["Body"].read())["count"] in COUNTS


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (photo_bytes(9), "text/plain", 415, "Content-Type 'text/plain' is not supported"),
        (b"not an image", "image/jpeg", 400, "the body is not a JPEG or PNG image"),
        (png_header_only(9000, 8000), "image/png", 413, "9000x8000 = 72,000,000 pixels"),
    ],
    ids=["type", "not-image", "bomb"],
)
def test_model_refusals_are_model_errors_with_the_original_status(runtime, body, content_type, status, message) -> None:
    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType=content_type)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == status
    # The handler's message: the JSON error of bincount serve, or the toolkit's first line (a traceback follows it).
    assert message in response["OriginalMessage"].splitlines()[0]
    assert f"Received client error ({status}) from primary" in response["Error"]["Message"]


@pytest.mark.parametrize("name", ["no-such-endpoint", "creating"])
def test_unknown_or_not_in_service_endpoint_is_a_validation_error(runtime, name: str) -> None:
    with pytest.raises(runtime.exceptions.ValidationError, match=f"Endpoint {name} of account \\d{{12}} not found"):
        runtime.invoke_endpoint(EndpointName=name, Body=photo_bytes(0), ContentType="image/jpeg")


def test_a_body_over_6_mb_is_refused_by_the_service(runtime, sagemaker: LocalSageMaker) -> None:
    before = sagemaker.invocations[ENDPOINT]
    with pytest.raises(ClientError, match="HTTP content length exceeded 6291456 bytes") as caught:
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, Body=b"\xff\xd8\xff" + bytes(6 * 2**20), ContentType="image/jpeg"
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert sagemaker.invocations[ENDPOINT] == before  # the container never saw it


@pytest.mark.parametrize(("name", "status"), [(ENDPOINT, "InService"), ("creating", "Creating")])
def test_describe_endpoint(runtime, name: str, status: str) -> None:
    described = boto3.client("sagemaker").describe_endpoint(EndpointName=name)
    assert described["EndpointName"] == name
    assert described["EndpointStatus"] == status
    assert described["EndpointArn"].endswith(f":endpoint/{name}")


def test_describe_a_missing_endpoint(runtime) -> None:
    with pytest.raises(ClientError, match=r'Could not find endpoint ".*no-such-endpoint"') as caught:
        boto3.client("sagemaker").describe_endpoint(EndpointName="no-such-endpoint")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_ping(sagemaker: LocalSageMaker) -> None:
    with urllib.request.urlopen(f"{sagemaker.url}/ping", timeout=10) as response:
        assert response.status == 200
