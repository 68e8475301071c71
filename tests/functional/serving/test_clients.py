"""``bincount invoke`` (the SageMaker Python SDK and plain boto3) and ``bincount count`` (the API) against the local
servers over loopback HTTP, and the API settings read from the stack's outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from bincount.cli import main
from bincount.local.api import LocalApi, load_handler, load_lambda_module
from bincount.local.endpoint import LocalSageMaker
from bincount.serving.client import (
    ApiClient,
    ApiSettings,
    ConfigError,
    ImageResult,
    format_table,
    resolve_api,
    resolve_endpoint,
)
from tests.support.serving import (
    ENDPOINT,
    CannedResponse,
    StubAws,
    encode,
    photo,
    photo_path,
    set_aws_env,
)

API_KEY = "client-test-key"
# CloudFormation's answer (query protocol) for a stack that does not exist: the default stack, never deployed here.
MISSING_STACK = CannedResponse(
    400,
    b'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type>'
    b"<Code>ValidationError</Code><Message>Stack with id Bincount does not exist</Message></Error>"
    b"<RequestId>stub</RequestId></ErrorResponse>",
)


@pytest.fixture(scope="module")
def api_server() -> Iterator[LocalApi]:
    with LocalApi(load_handler(), api_key=API_KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def aws(sagemaker: LocalSageMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch, sagemaker.url)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    for name in ("BINCOUNT_API_URL", "BINCOUNT_API_KEY", "BINCOUNT_STACK", "BINCOUNT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    api = load_lambda_module("api")
    api.runtime_client.cache_clear()
    api.sagemaker_client.cache_clear()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    png = folder / "photo.png"
    png.write_bytes(encode(photo(30), "PNG"))
    gif = folder / "photo.gif"
    gif.write_bytes(encode(photo(30), "GIF"))
    return {"jpeg": photo_path(30), "png": png, "gif": gif, "missing": folder / "missing.jpg"}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_counts(results: list[dict], n: int) -> None:
    assert len(results) == n
    for r in results:
        assert r["count"] in range(1, 6), r
        assert r["confidence"] == max(r["probabilities"].values())


# --- bincount invoke ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["boto3", "sdk"])
def test_invoke_counts_jpeg_and_png(capsys, images, via: str) -> None:
    code, out, _ = run_cli(
        capsys, "invoke", images["jpeg"], images["png"], "--endpoint", ENDPOINT, "--via", via, "--json"
    )
    assert code == 0
    results = json.loads(out)
    assert_counts(results, 2)
    assert [r["image"] for r in results] == [str(images["jpeg"]), str(images["png"])]
    assert results[0]["probabilities"] == results[1]["probabilities"]  # PNG of the same pixels: the same answer


def test_both_ways_give_the_same_answer(capsys, images) -> None:
    answers = [
        json.loads(run_cli(capsys, "invoke", images["jpeg"], "--endpoint", ENDPOINT, "--via", via, "--json")[1])
        for via in ("boto3", "sdk")
    ]
    assert answers[0] == answers[1]


def test_invoke_prints_a_table(capsys, images) -> None:
    code, out, _ = run_cli(capsys, "invoke", images["jpeg"], "--endpoint", ENDPOINT)
    header, row = out.strip().splitlines()
    assert header.split() == ["image", "count", "confidence"]
    assert row.split()[0] == str(images["jpeg"])
    assert int(row.split()[1]) in range(1, 6)
    assert code == 0


@pytest.mark.parametrize("via", ["boto3", "sdk"])
def test_invoke_reports_each_failure_and_goes_on(capsys, images, via: str) -> None:
    code, out, _ = run_cli(
        capsys,
        "invoke",
        images["gif"],
        images["missing"],
        images["jpeg"],
        "--endpoint",
        ENDPOINT,
        "--via",
        via,
        "--json",
    )
    gif, missing, jpeg = json.loads(out)
    assert code == 1
    assert gif["error"] == "not a JPEG or PNG image"
    assert missing["error"].startswith(f"cannot read {images['missing']}")
    assert jpeg["count"] in range(1, 6)


@pytest.mark.parametrize("via", ["boto3", "sdk"])
def test_invoke_an_unknown_endpoint(capsys, images, via: str) -> None:
    code, out, _ = run_cli(capsys, "invoke", images["jpeg"], "--endpoint", "nope", "--via", via, "--json")
    (result,) = json.loads(out)
    assert code == 1
    assert result["status"] == 400
    assert result["error"].startswith("ValidationError: Endpoint nope of account")


def test_invoke_shows_the_models_own_refusal(capsys, images, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(images["jpeg"].read_bytes()[:5000])
    code, out, _ = run_cli(capsys, "invoke", corrupt, "--endpoint", ENDPOINT, "--json")
    (result,) = json.loads(out)
    assert (code, result["status"]) == (1, 400)
    assert result["error"].startswith("the model answered 400: the JPEG image data is truncated or corrupt (")


# --- bincount count -----------------------------------------------------------------------------------------------


def test_count_with_flags(capsys, images, api_server: LocalApi) -> None:
    code, out, _ = run_cli(
        capsys, "count", images["jpeg"], images["png"], "--url", api_server.url, "--api-key", API_KEY, "--json"
    )
    assert code == 0
    assert_counts(json.loads(out), 2)


def test_count_with_environment(capsys, images, api_server: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINCOUNT_API_URL", api_server.url + "/")
    monkeypatch.setenv("BINCOUNT_API_KEY", API_KEY)
    code, out, _ = run_cli(capsys, "count", images["png"])
    assert code == 0
    assert out.splitlines()[1].split()[0] == str(images["png"])


def test_count_reports_api_errors(capsys, images, api_server: LocalApi) -> None:
    code, out, _ = run_cli(capsys, "count", images["jpeg"], images["gif"], "--url", api_server.url, "--json")
    forbidden, gif = json.loads(out)
    assert code == 1
    assert (forbidden["status"], forbidden["error"]) == (403, "Forbidden")  # API Gateway's own answer: no key
    assert gif["error"] == "not a JPEG or PNG image"  # refused here, before any upload


def test_count_refuses_an_image_over_the_apis_limit_before_uploading(capsys, api_server: LocalApi, tmp_path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(4_500_000))
    code, out, _ = run_cli(capsys, "count", big, "--url", api_server.url, "--api-key", API_KEY, "--json")
    (result,) = json.loads(out)
    assert code == 1
    assert result["error"] == "4,500,003 bytes: the limit is 4,500,000 bytes"


@pytest.mark.parametrize(
    ("command", "advice"),
    [
        ("count", "no API URL: pass --url, set BINCOUNT_API_URL, or deploy the stack"),
        ("invoke", "no endpoint name: pass --endpoint, set BINCOUNT_ENDPOINT, or deploy the stack"),
    ],
)
def test_without_settings_or_stack_the_cli_says_how_to_configure_it(
    capsys, images, monkeypatch: pytest.MonkeyPatch, command: str, advice: str
) -> None:
    with StubAws(MISSING_STACK) as cloudformation:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", cloudformation.url)
        code, _, err = run_cli(capsys, command, images["jpeg"])
    assert code == 2
    assert advice in err
    assert "Stack with id Bincount does not exist" in err
    assert cloudformation.requests[0][0] == "POST"  # it did look for the stack


def test_api_settings_from_the_stack_outputs(images, api_server: LocalApi) -> None:
    """The URL from the ``ApiUrl`` output, the key's value from API Gateway by the ``ApiKeyId`` output."""
    cloudformation = boto3.client("cloudformation")
    apigateway = boto3.client("apigateway")
    with Stubber(cloudformation) as cfn, Stubber(apigateway) as agw:
        cfn.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "Bincount",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "ApiUrl", "OutputValue": api_server.url + "/local/"},
                            {"OutputKey": "ApiKeyId", "OutputValue": "k3y1d"},
                        ],
                    }
                ]
            },
            {"StackName": "Bincount"},
        )
        agw.add_response("get_api_key", {"id": "k3y1d", "value": API_KEY}, {"apiKey": "k3y1d", "includeValue": True})
        clients = {"cloudformation": cloudformation, "apigateway": apigateway}
        settings = resolve_api(environ={}, aws_client=clients.__getitem__)
    assert settings == ApiSettings(api_server.url + "/local/", API_KEY)
    answer = ApiClient(settings).count(images["jpeg"].read_bytes(), "image/jpeg")  # the stage's invoke URL works
    assert answer["count"] in range(1, 6)


def test_the_endpoint_name_from_the_stack_outputs() -> None:
    cloudformation = boto3.client("cloudformation")
    with Stubber(cloudformation) as cfn:
        stack = {"StackName": "Bincount", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
        stack["Outputs"] = [{"OutputKey": "EndpointName", "OutputValue": "bincount-endpoint"}]
        cfn.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "Bincount"})
        assert resolve_endpoint(environ={}, aws_client=lambda service: cloudformation) == "bincount-endpoint"
    assert resolve_endpoint(environ={"BINCOUNT_ENDPOINT": "from-env"}) == "from-env"
    assert resolve_endpoint("from-flag", environ={"BINCOUNT_ENDPOINT": "from-env"}) == "from-flag"


def test_a_stack_without_the_url_output_is_a_clear_error() -> None:
    cloudformation = boto3.client("cloudformation")
    with Stubber(cloudformation) as cfn:
        stack = {"StackName": "X", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "CREATE_COMPLETE"}
        cfn.add_response("describe_stacks", {"Stacks": [stack]})
        with pytest.raises(ConfigError, match=r"stack X has no ApiUrl output \(it has: none\)"):
            resolve_api(stack="X", environ={}, aws_client=lambda service: cloudformation)


def test_error_rows_in_the_table() -> None:
    table = format_table(
        [ImageResult("a.jpg", count=3, confidence=0.5), ImageResult("b.gif", error="nope", status=415)]
    )
    assert table.splitlines() == [
        "image  count  confidence",
        "a.jpg      3  0.500",
        "b.gif  error  415 nope",
    ]
