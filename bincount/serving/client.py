"""Clients of the deployed model: the HTTP API (``bincount count``) and the SageMaker endpoint itself
(``bincount invoke``, through the SageMaker Python SDK's ``Endpoint`` resource or plain boto3).

Each image becomes one :class:`ImageResult`, a count or an error naming what went wrong; one bad image never stops
the others. boto3 and the SDK are imported only by the functions that need them.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bincount.serving.media import JSON, sniff

API_URL_ENV = "BINCOUNT_API_URL"
API_KEY_ENV = "BINCOUNT_API_KEY"
STACK_ENV = "BINCOUNT_STACK"
ENDPOINT_ENV = "BINCOUNT_ENDPOINT"
DEFAULT_STACK = "Bincount"
"""The CDK app's default ``stackName`` (cdk.json)."""
API_URL_OUTPUT = "ApiUrl"
"""Stack output holding the API's invoke URL (``https://<id>.execute-api.<region>.amazonaws.com/<stage>/``)."""
API_KEY_ID_OUTPUT = "ApiKeyId"
"""Stack output holding the API key's id; its value is read from API Gateway, never stored in the stack."""
ENDPOINT_OUTPUT = "EndpointName"
"""Stack output holding the SageMaker endpoint's name."""
COUNT_PATH = "/count"
TIMEOUT_S = 60.0

Call = Callable[[bytes, str], Mapping[str, Any]]


class CountError(Exception):
    """One image could not be counted; ``status`` is the HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(Exception):
    """The client is not configured (no API URL...); the message says how to configure it."""


@dataclass
class ImageResult:
    """The count of one image, or the error that prevented it."""

    image: str
    count: int | None = None
    confidence: float | None = None
    probabilities: dict[str, float] | None = None
    error: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def read_image(path: Path, max_bytes: int) -> tuple[bytes, str]:
    """The file's bytes and content type (from its magic bytes), refused early when the service would refuse it."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CountError(f"cannot read {path}: {e.strerror or e}") from e
    kind = sniff(data)
    if kind is None:
        raise CountError("not a JPEG or PNG image")
    if len(data) > max_bytes:
        raise CountError(f"{len(data):,} bytes: the limit is {max_bytes:,} bytes")
    return data, kind[1]


def count_images(paths: Iterable[Path], call: Call, *, max_bytes: int) -> list[ImageResult]:
    """Send each image through ``call(body, content_type)`` and collect the results in order."""
    results = []
    for path in paths:
        try:
            body, content_type = read_image(path, max_bytes)
            answer = call(body, content_type)
            results.append(
                ImageResult(
                    str(path),
                    count=int(answer["count"]),
                    confidence=float(answer["confidence"]),
                    probabilities={str(k): float(v) for k, v in answer["probabilities"].items()},
                )
            )
        except CountError as e:
            results.append(ImageResult(str(path), error=str(e), status=e.status))
        except (KeyError, TypeError, ValueError) as e:
            results.append(ImageResult(str(path), error=f"unexpected answer ({type(e).__name__}: {e})"))
    return results


# --- the API --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiSettings:
    url: str
    api_key: str | None = None


def resolve_api(
    url: str | None = None,
    api_key: str | None = None,
    *,
    stack: str | None = None,
    region: str | None = None,
    environ: Mapping[str, str] = os.environ,
    aws_client: Callable[[str], Any] | None = None,
) -> ApiSettings:
    """URL and key from the arguments, else ``BINCOUNT_API_URL`` / ``BINCOUNT_API_KEY``, else the stack's outputs
    (``ApiUrl``, ``ApiKeyId``) read with boto3 (``aws_client(service)`` makes the clients; default: boto3's).

    Raises:
        ConfigError: no URL anywhere; the message lists the three ways to give one.
    """
    url = url or environ.get(API_URL_ENV)
    api_key = api_key or environ.get(API_KEY_ENV)
    if url:
        return ApiSettings(url, api_key)
    stack = stack or environ.get(STACK_ENV) or DEFAULT_STACK
    aws_client = aws_client or _boto3_clients(region)
    try:
        outputs = stack_outputs(aws_client("cloudformation"), stack)
        url = output(outputs, stack, API_URL_OUTPUT)
        if api_key is None:
            api_key = api_key_value(aws_client("apigateway"), output(outputs, stack, API_KEY_ID_OUTPUT))
    except ConfigError as e:
        raise ConfigError(f"no API URL: pass --url, set {API_URL_ENV}, or deploy the stack ({e})") from e
    return ApiSettings(url, api_key)


def resolve_endpoint(
    endpoint: str | None = None,
    *,
    stack: str | None = None,
    region: str | None = None,
    environ: Mapping[str, str] = os.environ,
    aws_client: Callable[[str], Any] | None = None,
) -> str:
    """The endpoint's name from the argument, else ``BINCOUNT_ENDPOINT``, else the stack's ``EndpointName`` output.

    Raises:
        ConfigError: no name anywhere; the message lists the three ways to give one.
    """
    endpoint = endpoint or environ.get(ENDPOINT_ENV)
    if endpoint:
        return endpoint
    stack = stack or environ.get(STACK_ENV) or DEFAULT_STACK
    try:
        cloudformation = (aws_client or _boto3_clients(region))("cloudformation")
        return output(stack_outputs(cloudformation, stack), stack, ENDPOINT_OUTPUT)
    except ConfigError as e:
        raise ConfigError(f"no endpoint name: pass --endpoint, set {ENDPOINT_ENV}, or deploy the stack ({e})") from e


def _boto3_clients(region: str | None) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            return boto3.client(service, region_name=region)
        except BotoCoreError as e:  # NoRegionError...
            raise ConfigError(f"{e} (pass --region or set AWS_REGION)") from e

    return make


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A CloudFormation stack's outputs by key."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)
    except (BotoCoreError, ClientError) as e:
        raise ConfigError(f"cannot read stack {stack}: {e}") from e
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def output(outputs: Mapping[str, str], stack: str, key: str) -> str:
    """One of the stack's outputs, or a ConfigError listing those it has."""
    if key not in outputs:
        raise ConfigError(f"stack {stack} has no {key} output (it has: {', '.join(outputs) or 'none'})")
    return outputs[key]


def api_key_value(apigateway: Any, key_id: str) -> str:
    """The value of an API Gateway API key."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"]
    except (BotoCoreError, ClientError, KeyError) as e:
        raise ConfigError(f"cannot read the value of API key {key_id}: {e}") from e


class ApiClient:
    """POSTs images to the API's ``/count``."""

    def __init__(self, settings: ApiSettings, *, timeout: float = TIMEOUT_S) -> None:
        self.url = settings.url.rstrip("/") + COUNT_PATH
        self.api_key = settings.api_key
        self.timeout = timeout

    def count(self, body: bytes, content_type: str) -> dict[str, Any]:
        """The API's JSON answer for one image.

        Raises:
            CountError: the API answered an error (its message and status), or could not be reached.
        """
        headers = {"Content-Type": content_type, "Accept": JSON}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise CountError(_error_message(e.read(), e.reason), e.code) from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CountError(f"cannot reach {self.url}: {reason}") from e
        except ValueError as e:
            raise CountError("the API answered something that is not JSON") from e


def _error_message(body: bytes, fallback: str) -> str:
    """``{"error": ...}`` from our Lambda, ``{"message": ...}`` from API Gateway itself."""
    try:
        payload = json.loads(body)
        return str(payload.get("error") or payload.get("message") or fallback)
    except (ValueError, AttributeError):
        return fallback


# --- the endpoint ---------------------------------------------------------------------------------------------------


def endpoint_caller(endpoint: str, via: str, region: str | None = None) -> Call:
    """``call(body, content_type)`` for :func:`count_images`, through ``"boto3"`` or the SageMaker SDK (``"sdk"``).

    Raises:
        ConfigError: no region, or the SDK cannot make a session.
    """
    runtime = _boto3_clients(region)("sagemaker-runtime")  # AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME may redirect it
    if via == "boto3":

        def call(body: bytes, content_type: str) -> Mapping[str, Any]:
            response = _aws(
                runtime.invoke_endpoint, EndpointName=endpoint, Body=body, ContentType=content_type, Accept=JSON
            )
            return json.loads(response["Body"].read())

        return call
    if via == "sdk":
        sdk_endpoint, session = sdk_resource(endpoint, runtime.meta.region_name)

        def call_sdk(body: bytes, content_type: str) -> Mapping[str, Any]:
            output = _aws(sdk_endpoint.invoke, body=body, content_type=content_type, accept=JSON, session=session)
            payload = output.body.read() if hasattr(output.body, "read") else output.body
            return json.loads(payload)

        return call_sdk
    raise ValueError(f"via must be 'boto3' or 'sdk', got {via!r}")


def sdk_resource(endpoint: str, region: str) -> tuple[Any, Any]:
    """The SageMaker Python SDK's (``sagemaker-core``) ``Endpoint`` resource, made without a DescribeEndpoint call,
    and the boto3 session its ``invoke`` sends the raw bytes through."""
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # it announces every config file it skips
    import boto3
    from sagemaker.core.resources import Endpoint

    return Endpoint(endpoint_name=endpoint), boto3.Session(region_name=region)


def model_detail(original_message: object) -> str:
    """What the model said: the ``error`` of ``bincount serve``'s JSON, or the first line of the serving toolkit's
    text (a traceback follows it)."""
    text = str(original_message or "").strip()
    if text.startswith("{"):
        try:
            error = json.loads(text).get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, str) and error.strip():
            return error.strip()
    return (text.splitlines() or ["?"])[0]


def _aws(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call boto3 (directly or through the SDK), turning its errors into a :class:`CountError`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return func(*args, **kwargs)
    except ClientError as e:
        error = e.response.get("Error", {})
        if error.get("Code") == "ModelError":
            status = e.response.get("OriginalStatusCode")
            raise CountError(
                f"the model answered {status}: {model_detail(e.response.get('OriginalMessage'))}", status
            ) from e
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise CountError(f"{error.get('Code')}: {error.get('Message')}", status) from e
    except BotoCoreError as e:
        raise CountError(str(e)) from e


# --- output ---------------------------------------------------------------------------------------------------------


def format_table(results: Iterable[ImageResult]) -> str:
    """An aligned text table: image, count, confidence (or the error)."""
    rows = [("image", "count", "confidence")]
    for r in results:
        if r.ok:
            rows.append((r.image, str(r.count), f"{r.confidence:.3f}"))
        else:
            rows.append((r.image, "error", f"{r.status} {r.error}" if r.status else str(r.error)))
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{image:<{width}}  {count:>5}  {rest}" for image, count, rest in rows)
