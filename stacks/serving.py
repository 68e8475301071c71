"""CountApi: the REST API of docs/design.md §5 in front of the endpoint, through the Lambda handler in ``lambda/``.

- ``POST /count`` (raw image body, ``Content-Type`` required) and ``GET /health``, both behind an API key
  (``x-api-key``) whose usage plan is sized for one ml.t2.medium (rate, burst, daily quota from the settings) times
  ``maxInstances``, the most instances autoscaling gives the endpoint;
- binary media types so images reach the Lambda base64-encoded;
- request validation of what API Gateway can check (the Content-Type header of POST /count; the body is a binary
  image, which no model describes, so the Lambda checks it), JSON access logs, X-Ray tracing, execution logs at ERROR;
- API Gateway's own errors answered as JSON ``{"error": ...}`` like the Lambda's: throttled, bad key, missing
  Content-Type, too large, and no such route, which is also what a wrong method gets (a REST API answers a method a
  resource does not have as it answers an unknown path, MISSING_AUTHENTICATION_TOKEN, before the API key is checked,
  and never calls the Lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from bincount.cloud.settings import Settings
from bincount.local.api import load_lambda_module
from bincount.paths import LAMBDA_DIR
from bincount.serving.media import API_BINARY_MEDIA_TYPES, MAX_API_IMAGE_BYTES
from stacks.log_groups import log_group
from stacks.nag import NagWildcard, suppress, suppress_wildcards
from stacks.permissions import Arns, Permission, attach

HANDLER_DIR = LAMBDA_DIR
HANDLER = "api.handler"
STAGE_NAME = "v1"
BINARY_MEDIA_TYPES: tuple[str, ...] = API_BINARY_MEDIA_TYPES  # the local API applies the same (bincount.serving.media)
ASSET_EXCLUDES: tuple[str, ...] = ("__pycache__", "*.pyc", "tests", ".pytest_cache")

# API Gateway's own error responses, in the API's JSON error shape: (response type, status, message).
GATEWAY_ERRORS: tuple[tuple[apigw.ResponseType, str | None, str], ...] = (
    (apigw.ResponseType.THROTTLED, "429", "too many requests: slow down and retry"),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "daily request quota of this API key exceeded"),
    (apigw.ResponseType.INVALID_API_KEY, "403", "missing or invalid API key: send it in the x-api-key header"),
    (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "400", "missing Content-Type header: send image/jpeg or image/png"),
    (
        apigw.ResponseType.REQUEST_TOO_LARGE,
        "413",
        f"request too large: send an image of at most {MAX_API_IMAGE_BYTES:,} bytes",
    ),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", "no such route: use POST /count or GET /health"),
    # Anything else API Gateway refuses itself (its message, in our shape and with its own status).
    (apigw.ResponseType.DEFAULT_4_XX, None, "$context.error.message"),
    (apigw.ResponseType.DEFAULT_5_XX, None, "$context.error.message"),
)


@dataclass(frozen=True)
class UsageLimits:
    """The API's throttling and quota: the settings' per-instance values times ``maxInstances``."""

    rate_limit: float
    burst_limit: int
    daily_quota: int


def usage_limits(settings: Settings) -> UsageLimits:
    scale = settings.max_instances
    return UsageLimits(
        rate_limit=settings.api_rate_limit * scale,
        burst_limit=settings.api_burst_limit * scale,
        daily_quota=settings.api_daily_quota * scale,
    )


def handler_timeout_s(handler_dir: Path = HANDLER_DIR) -> int:
    """The function timeout the handler computes from its clients' timeouts and retries (``api.TIMEOUT_S``)."""
    return int(load_lambda_module(HANDLER.split(".")[0], handler_dir).TIMEOUT_S)


class CountApi(Construct):
    """The API, its Lambda handler (``lambda/api.py``), API key and usage plan."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, handler_dir: Path = HANDLER_DIR):
        super().__init__(scope, construct_id)
        self.function = self._handler(settings, handler_dir)
        limits = usage_limits(settings)
        access_logs = log_group(self, "AccessLogs", retention_days=settings.log_retention_days)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{settings.name_prefix}-api",
            description="Count the objects in a bin photo: POST /count with the image, GET /health.",
            binary_media_types=list(BINARY_MEDIA_TYPES),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=limits.rate_limit,
                throttling_burst_limit=limits.burst_limit,
            ),
        )
        validator = self.api.add_request_validator(
            "RequestValidator",
            request_validator_name="headers",
            # The required Content-Type header of POST /count; a missing one gets BAD_REQUEST_PARAMETERS (400).
            validate_request_parameters=True,
            # Body validation needs a model, and the body is a binary image: API Gateway would skip it.
            validate_request_body=False,
        )
        integration = apigw.LambdaIntegration(self.function, proxy=True, allow_test_invoke=False)
        count = self.api.root.add_resource("count").add_method(
            "POST",
            integration,
            api_key_required=True,
            request_validator=validator,
            request_parameters={"method.request.header.Content-Type": True},
        )
        health = self.api.root.add_resource("health").add_method(
            "GET", integration, api_key_required=True, request_validator=validator
        )
        for response_type, status, message in GATEWAY_ERRORS:
            self.api.add_gateway_response(
                f"{response_type.response_type.title().replace('_', '')}Response",
                type=response_type,
                status_code=status,
                templates={"application/json": f'{{"error": "{message}"}}'},
            )
        self.api_key = self.api.add_api_key("ApiKey", api_key_name=f"{settings.name_prefix}-key")
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{settings.name_prefix}-usage",
            description=f"Sized for {settings.max_instances} ml.t2.medium-sized endpoint instance(s) (maxInstances).",
            throttle=apigw.ThrottleSettings(rate_limit=limits.rate_limit, burst_limit=limits.burst_limit),
            quota=apigw.QuotaSettings(limit=limits.daily_quota, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        plan.add_api_key(self.api_key)
        suppress(self.function, "PinnedRuntime")
        suppress(self.api.deployment_stage, "NoWaf")
        suppress(self.api.node.default_child, "NoBodyModel")
        for method in (count, health):
            suppress(method.node.default_child, "ApiKeyCallers", "NoUserPool")
        suppress(self.api.node.find_child("CloudWatchRole"), "ApiGatewayLogsRole")

    def _handler(self, settings: Settings, handler_dir: Path) -> lambda_.Function:
        handler_logs = log_group(self, "HandlerLogs", retention_days=settings.log_retention_days)
        role = iam.Role(
            self,
            "HandlerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The bincount API handler: invokes and describes the one endpoint.",
        )
        policy = iam.Policy(self, "HandlerAccess", roles=[role])
        arns = Arns(self, settings)
        attach(
            policy,
            [
                Permission("WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [handler_logs.log_group_arn]),
                Permission(
                    "InvokeEndpoint", ["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"], [arns.endpoint]
                ),
            ],
        )
        function = lambda_.Function(
            self,
            "Handler",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(handler_dir), exclude=list(ASSET_EXCLUDES)),
            environment={"ENDPOINT_NAME": settings.endpoint_name},
            # The handler's worst case plus its own work, within API Gateway's 29 s (lambda/api.py says why).
            timeout=Duration.seconds(handler_timeout_s(handler_dir)),
            memory_size=256,
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=handler_logs,
            description="POST /count and GET /health in front of the SageMaker endpoint.",
        )
        function.node.add_dependency(policy)
        # Tracing adds xray:PutTraceSegments / PutTelemetryRecords on "*" to the role's default policy.
        suppress_wildcards(role, [NagWildcard("Resource", "*", "NoResourceLevelPermissions")])
        return function
