"""The deployment state machine (docs/design.md §10): a registered, approved model package -> the endpoint.

    ApplyDefaults -> ChoosePackage -> DescribeModelPackage -> CheckApproved -> NameDeployment -> CreateModel
      -> CreateEndpointConfig[WithCapture] -> FindEndpoint -> CreateEndpoint
                                                           | PauseAutoscaling -> UpdateEndpoint (blue/green)
      -> DescribeEndpoint / WaitInService (poll) -> ChooseAutoscaling -> RegisterScalableTarget -> PutScalingPolicy
      -> Summarize -> NotifySuccess

Started three ways, all with the same input: by the training pipeline for an auto-approved package
(``{"modelPackageArn": ..., "notify": false}``, it waits with ``.sync:2`` and notifies itself), by the EventBridge
rule on a package a person approved (``{"modelPackageArn": ...}``), or by hand (``bincount deploy --version N`` sends
``{"modelPackageVersion": N}``; ``{}`` deploys the newest approved version). Any deployment setting of the input
overrides its default (``minInstances``, ``maxInstances``, ``dataCapturePercent``, ``endpointInstanceType``...).

Updates are blue/green, all at once, baking ``bakeMinutes`` under the stack's rollback alarms. SageMaker rolls back
on an alarm and the endpoint stays InService on the previous config: that is EndpointRolledBack, a Fail with
SageMaker's FailureReason. Autoscaling is paused (the variant deregistered as a scalable target) while an update
runs, since Application Auto Scaling refuses instance type changes of a registered variant, and registered again
after it when ``maxInstances`` > 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stacks.pipeline.asl import (
    ANY_ERROR,
    DATA_BUCKET,
    ERROR_PATH,
    SAGEMAKER_API_ERRORS,
    SAGEMAKER_ROLE_ARN,
    TOPIC_ARN,
    State,
    error_state,
    format_string,
    pass_state,
    retry,
    sagemaker_task,
    sdk_task,
    task,
)
from stacks.pipeline.requests import RUN_ID_PATH, RUN_TAG, VARIANT_NAME
from stacks.storage import CAPTURE_PREFIX

MODEL_PACKAGE_ARN_PREFIX = "${ModelPackageArnPrefix}"
"""``arn:<partition>:sagemaker:<region>:<account>:model-package/<group>/``: a version number completes it."""
DEPLOY_PLACEHOLDERS: tuple[str, ...] = (
    "DataBucket",
    "SageMakerRoleArn",
    "NotificationTopicArn",
    "ModelPackageArnPrefix",
)

# State names.
APPLY_DEFAULTS = "ApplyDefaults"
MERGE_SETTINGS = "MergeSettings"
VALIDATE_SETTINGS = "ValidateSettings"
INVALID_SETTINGS = "InvalidSettings"
CHOOSE_PACKAGE = "ChoosePackage"
USE_PACKAGE_ARN = "UsePackageArn"
USE_PACKAGE_VERSION = "UsePackageVersion"
FIND_LATEST_APPROVED = "FindLatestApproved"
CHECK_LATEST_APPROVED = "CheckLatestApproved"
USE_LATEST_APPROVED = "UseLatestApproved"
NO_APPROVED_PACKAGE = "NoApprovedPackage"
DESCRIBE_PACKAGE = "DescribeModelPackage"
CHECK_APPROVED = "CheckApproved"
NOT_APPROVED = "PackageNotApproved"
NAME_DEPLOYMENT = "NameDeployment"
CREATE_MODEL = "CreateModel"
CHOOSE_CAPTURE = "ChooseCapture"
CREATE_ENDPOINT_CONFIG = "CreateEndpointConfig"
CREATE_ENDPOINT_CONFIG_WITH_CAPTURE = "CreateEndpointConfigWithCapture"
FIND_ENDPOINT = "FindEndpoint"
ENDPOINT_EXISTS = "EndpointExists"
CREATE_ENDPOINT = "CreateEndpoint"
FIND_SCALABLE_TARGET = "FindScalableTarget"
CHECK_SCALABLE_TARGET = "CheckScalableTarget"
PAUSE_AUTOSCALING = "PauseAutoscaling"
UPDATE_ENDPOINT = "UpdateEndpoint"
START_POLLING = "StartPolling"
DESCRIBE_ENDPOINT = "DescribeEndpoint"
WAIT_IN_SERVICE = "WaitInService"
WAIT_FOR_ENDPOINT = "WaitForEndpoint"
COUNT_POLL = "CountPoll"
ENDPOINT_FAILED = "EndpointFailed"
ENDPOINT_UNAVAILABLE = "EndpointUnavailable"
CHECK_ROLLBACK_REASON = "CheckRollbackReason"
ENDPOINT_ROLLED_BACK = "EndpointRolledBack"
ENDPOINT_ROLLED_BACK_WITHOUT_REASON = "EndpointRolledBackWithoutReason"
ENDPOINT_TIMED_OUT = "EndpointTimedOut"
CHOOSE_AUTOSCALING = "ChooseAutoscaling"
REGISTER_SCALABLE_TARGET = "RegisterScalableTarget"
PUT_SCALING_POLICY = "PutScalingPolicy"
SUMMARIZE = "Summarize"
CHECK_NOTIFY = "CheckNotify"
NOTIFY_SUCCESS = "NotifySuccess"
SUCCEEDED = "DeploymentSucceeded"
CHECK_NOTIFY_FAILURE = "CheckNotifyFailure"
NOTIFY_FAILURE = "NotifyFailure"
CHECK_ERROR_NAME = "CheckErrorName"
FAILED = "DeploymentFailed"
STEP_FAILED = "DeploymentStepFailed"

# Error names of the deployment's own failures.
INVALID_SETTINGS_ERROR = "InvalidSettings"
NO_APPROVED_PACKAGE_ERROR = "NoApprovedModelPackage"
NOT_APPROVED_ERROR = "ModelPackageNotApproved"
ENDPOINT_FAILED_ERROR = "EndpointFailed"
ENDPOINT_UNAVAILABLE_ERROR = "EndpointUnavailable"
ENDPOINT_ROLLED_BACK_ERROR = "EndpointUpdateRolledBack"
ENDPOINT_TIMED_OUT_ERROR = "EndpointTimedOut"
STEP_FAILED_ERROR = "DeploymentStepFailed"

# Application Auto Scaling's names for the endpoint's variant.
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
SCALE_IN_COOLDOWN_SECONDS = 300
SCALE_OUT_COOLDOWN_SECONDS = 60
# SageMaker's deployment: provisioning the green fleet plus the baking period, within the API's bounds.
PROVISIONING_SECONDS = 3600
MAX_DEPLOYMENT_SECONDS = 28800

_NUMERIC_SETTINGS: tuple[str, ...] = (
    "minInstances",
    "maxInstances",
    "dataCapturePercent",
    "invocationsPerInstance",
    "endpointPollSeconds",
    "endpointMaxPolls",
)
_STRING_SETTINGS: tuple[str, ...] = ("endpointInstanceType",)
_BOOLEAN_SETTINGS: tuple[str, ...] = ("notify",)
DEPLOY_SETTINGS: tuple[str, ...] = _NUMERIC_SETTINGS + _STRING_SETTINGS
"""The runtime settings the deployment reads (the training pipeline passes its values of these on)."""


@dataclass(frozen=True)
class DeploySpec:
    """What the deployment definition needs that is fixed at synth time."""

    name_prefix: str
    endpoint_name: str
    region: str
    model_package_group: str
    defaults: dict[str, Any]
    rollback_alarms: tuple[str, ...]
    bake_minutes: int

    @property
    def resource_id(self) -> str:
        """The endpoint variant's id in Application Auto Scaling."""
        return f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}"

    @property
    def scaling_policy_name(self) -> str:
        return f"{self.name_prefix}-invocations-per-instance"


def _tags() -> list[dict[str, str]]:
    return [{"Key": RUN_TAG, "Value.$": RUN_ID_PATH}]


def settings_states(spec: DeploySpec) -> dict[str, State]:
    """ApplyDefaults: the deployment settings' defaults merged with the input, validated."""
    expected = set(_NUMERIC_SETTINGS + _STRING_SETTINGS + _BOOLEAN_SETTINGS)
    if expected ^ set(spec.defaults):
        raise ValueError(f"deployment defaults and validated settings differ: {sorted(expected ^ set(spec.defaults))}")
    wrong_type = (
        [{"Not": {"Variable": f"$.config.{key}", "IsNumeric": True}} for key in _NUMERIC_SETTINGS]
        + [{"Not": {"Variable": f"$.config.{key}", "IsString": True}} for key in _STRING_SETTINGS]
        + [{"Not": {"Variable": f"$.config.{key}", "IsBoolean": True}} for key in _BOOLEAN_SETTINGS]
    )
    bad_value = [
        {"Variable": "$.config.minInstances", "NumericLessThan": 1},
        {"Variable": "$.config.maxInstances", "NumericLessThanPath": "$.config.minInstances"},
        {"Variable": "$.config.dataCapturePercent", "NumericLessThan": 0},
        {"Variable": "$.config.dataCapturePercent", "NumericGreaterThan": 100},
        {"Variable": "$.config.invocationsPerInstance", "NumericLessThanEquals": 0},
    ]
    return {
        APPLY_DEFAULTS: pass_state(MERGE_SETTINGS, parameters={"defaults": spec.defaults, "overrides.$": "$"}),
        MERGE_SETTINGS: pass_state(
            VALIDATE_SETTINGS,
            parameters={
                "config.$": "States.JsonMerge($.defaults, $.overrides, false)",
                "uuid.$": "States.StringSplit(States.UUID(), '-')",
            },
        ),
        VALIDATE_SETTINGS: {
            "Type": "Choice",
            "Choices": [
                {"Or": wrong_type, "Next": INVALID_SETTINGS},
                {"Or": bad_value, "Next": INVALID_SETTINGS},
            ],
            "Default": CHOOSE_PACKAGE,
        },
        INVALID_SETTINGS: error_state(
            INVALID_SETTINGS_ERROR,
            "The deployment input has an invalid setting: minInstances >= 1, maxInstances >= minInstances, "
            "dataCapturePercent 0..100, invocationsPerInstance > 0, numbers as numbers, notify true or false. "
            "Settings after applying defaults: {}",
            "States.JsonToString($.config)",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
    }


def package_states(spec: DeploySpec) -> dict[str, State]:
    """Which package: the input's ARN, its version in the stack's group, or the newest approved one; then it must
    be Approved."""
    return {
        CHOOSE_PACKAGE: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.config.modelPackageArn", "IsPresent": True, "Next": USE_PACKAGE_ARN},
                {"Variable": "$.config.modelPackageVersion", "IsPresent": True, "Next": USE_PACKAGE_VERSION},
            ],
            "Default": FIND_LATEST_APPROVED,
        },
        USE_PACKAGE_ARN: pass_state(
            DESCRIBE_PACKAGE, parameters={"arn.$": "$.config.modelPackageArn"}, result_path="$.package"
        ),
        USE_PACKAGE_VERSION: pass_state(
            DESCRIBE_PACKAGE,
            parameters={"arn.$": format_string(f"{MODEL_PACKAGE_ARN_PREFIX}{{}}", "$.config.modelPackageVersion")},
            result_path="$.package",
        ),
        FIND_LATEST_APPROVED: sdk_task(
            "sagemaker:listModelPackages",
            {
                "ModelPackageGroupName": spec.model_package_group,
                "ModelApprovalStatus": "Approved",
                "SortBy": "CreationTime",
                "SortOrder": "Descending",
                "MaxResults": 1,
            },
            result_selector={"arns.$": "$.ModelPackageSummaryList[*].ModelPackageArn"},
            result_path="$.latest",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=CHECK_LATEST_APPROVED,
        ),
        CHECK_LATEST_APPROVED: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.latest.arns[0]", "IsPresent": True, "Next": USE_LATEST_APPROVED}],
            "Default": NO_APPROVED_PACKAGE,
        },
        USE_LATEST_APPROVED: pass_state(
            DESCRIBE_PACKAGE,
            parameters={"arn.$": "$.latest.arns[0]"},
            result_path="$.package",
        ),
        NO_APPROVED_PACKAGE: error_state(
            NO_APPROVED_PACKAGE_ERROR,
            f"Model package group {spec.model_package_group} has no approved version: run the training pipeline or "
            "approve a version; the endpoint is unchanged.",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        DESCRIBE_PACKAGE: sdk_task(
            "sagemaker:describeModelPackage",
            {"ModelPackageName.$": "$.package.arn"},
            result_selector={
                "arn.$": "$.ModelPackageArn",
                "version.$": "$.ModelPackageVersion",
                "status.$": "$.ModelApprovalStatus",
                "containers.$": "$.InferenceSpecification.Containers",
            },
            result_path="$.package",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=CHECK_APPROVED,
        ),
        CHECK_APPROVED: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.package.status", "StringEquals": "Approved", "Next": NAME_DEPLOYMENT}],
            "Default": NOT_APPROVED,
        },
        NOT_APPROVED: error_state(
            NOT_APPROVED_ERROR,
            "Model package {} is {}: only Approved packages are deployed. Approve it in SageMaker Studio or with "
            "aws sagemaker update-model-package --model-approval-status Approved; the endpoint is unchanged.",
            "$.package.arn",
            "$.package.status",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
    }


def endpoint_config(spec: DeploySpec, *, capture: bool) -> dict[str, Any]:
    """CreateEndpointConfig: ``minInstances`` of the instance type serving the package's model; with ``capture``
    the endpoint writes ``dataCapturePercent`` of requests and responses under ``capture/`` in the data bucket."""
    request: dict[str, Any] = {
        "EndpointConfigName.$": "$.run.endpointConfigName",
        "ProductionVariants": [
            {
                "VariantName": VARIANT_NAME,
                "ModelName.$": "$.run.modelName",
                "InitialInstanceCount.$": "$.config.minInstances",
                "InstanceType.$": "$.config.endpointInstanceType",
                "InitialVariantWeight": 1,
            }
        ],
        "Tags": _tags(),
    }
    if capture:
        request["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage.$": "$.config.dataCapturePercent",
            "DestinationS3Uri": f"s3://{DATA_BUCKET}/{CAPTURE_PREFIX.rstrip('/')}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    return request


def update_endpoint(spec: DeploySpec) -> dict[str, Any]:
    """UpdateEndpoint, blue/green: all traffic at once to the new fleet, which bakes ``bakeMinutes`` under the
    rollback alarms before the old fleet goes (one instance or many alike: canary and linear need several)."""
    bake_seconds = spec.bake_minutes * 60
    return {
        "EndpointName": spec.endpoint_name,
        "EndpointConfigName.$": "$.run.endpointConfigName",
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake_seconds},
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": min(MAX_DEPLOYMENT_SECONDS, bake_seconds + PROVISIONING_SECONDS),
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in spec.rollback_alarms]},
        },
    }


def deploy_states(spec: DeploySpec) -> dict[str, State]:
    """Model, endpoint config, create or update (blue/green) the endpoint, poll DescribeEndpoint to the outcome."""
    name = spec.endpoint_name
    run_id = "{}{}"
    uuid = ("$.uuid[0]", "$.uuid[1]")
    prefix = spec.name_prefix
    autoscaling_target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": spec.resource_id,
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    return {
        NAME_DEPLOYMENT: pass_state(
            CREATE_MODEL,
            parameters={
                "id.$": format_string(run_id, *uuid),
                "modelName.$": format_string(f"{prefix}-model-{run_id}", *uuid),
                "endpointConfigName.$": format_string(f"{prefix}-config-{run_id}", *uuid),
            },
            result_path="$.run",
        ),
        CREATE_MODEL: sagemaker_task(
            "createModel",
            {
                "ModelName.$": "$.run.modelName",
                "ExecutionRoleArn": SAGEMAKER_ROLE_ARN,
                # The image, artifact and environment come from the package (what was registered is what serves).
                "PrimaryContainer": {"ModelPackageName.$": "$.package.arn"},
                "Tags": _tags(),
            },
            result_path=None,
            catch=CHECK_NOTIFY_FAILURE,
            next_state=CHOOSE_CAPTURE,
        ),
        CHOOSE_CAPTURE: {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.config.dataCapturePercent",
                    "NumericGreaterThan": 0,
                    "Next": CREATE_ENDPOINT_CONFIG_WITH_CAPTURE,
                }
            ],
            "Default": CREATE_ENDPOINT_CONFIG,
        },
        CREATE_ENDPOINT_CONFIG: sagemaker_task(
            "createEndpointConfig",
            endpoint_config(spec, capture=False),
            result_path=None,
            catch=CHECK_NOTIFY_FAILURE,
            next_state=FIND_ENDPOINT,
        ),
        CREATE_ENDPOINT_CONFIG_WITH_CAPTURE: sagemaker_task(
            "createEndpointConfig",
            endpoint_config(spec, capture=True),
            result_path=None,
            catch=CHECK_NOTIFY_FAILURE,
            next_state=FIND_ENDPOINT,
        ),
        FIND_ENDPOINT: sdk_task(
            "sagemaker:listEndpoints",
            {"NameContains": name, "MaxResults": 100},
            result_selector={"exists.$": f"States.ArrayContains($.Endpoints[*].EndpointName, '{name}')"},
            result_path="$.existingEndpoint",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=ENDPOINT_EXISTS,
        ),
        ENDPOINT_EXISTS: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.existingEndpoint.exists", "BooleanEquals": True, "Next": FIND_SCALABLE_TARGET}],
            "Default": CREATE_ENDPOINT,
        },
        CREATE_ENDPOINT: sagemaker_task(
            "createEndpoint",
            {"EndpointName": name, "EndpointConfigName.$": "$.run.endpointConfigName", "Tags": _tags()},
            result_path=None,
            catch=CHECK_NOTIFY_FAILURE,
            next_state=START_POLLING,
        ),
        FIND_SCALABLE_TARGET: sdk_task(
            "applicationautoscaling:describeScalableTargets",
            {
                "ServiceNamespace": "sagemaker",
                "ResourceIds": [spec.resource_id],
                "ScalableDimension": SCALABLE_DIMENSION,
            },
            result_selector={"targets.$": "$.ScalableTargets"},
            result_path="$.autoscaling",
            retriers=[retry(ANY_ERROR)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=CHECK_SCALABLE_TARGET,
        ),
        CHECK_SCALABLE_TARGET: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.autoscaling.targets[0]", "IsPresent": True, "Next": PAUSE_AUTOSCALING}],
            "Default": UPDATE_ENDPOINT,
        },
        # Deregistering also deletes the target-tracking policy and its alarms; ChooseAutoscaling puts them back.
        PAUSE_AUTOSCALING: sdk_task(
            "applicationautoscaling:deregisterScalableTarget",
            autoscaling_target,
            result_path=None,
            retriers=[retry(ANY_ERROR)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=UPDATE_ENDPOINT,
        ),
        UPDATE_ENDPOINT: sagemaker_task(
            "updateEndpoint",
            update_endpoint(spec),
            result_path=None,
            catch=CHECK_NOTIFY_FAILURE,
            next_state=START_POLLING,
        ),
        START_POLLING: pass_state(DESCRIBE_ENDPOINT, result={"count": 0}, result_path="$.polls"),
        DESCRIBE_ENDPOINT: sdk_task(
            "sagemaker:describeEndpoint",
            {"EndpointName": name},
            result_path="$.endpoint",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=WAIT_IN_SERVICE,
        ),
        WAIT_IN_SERVICE: {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.endpoint.EndpointStatus", "StringEquals": "InService"},
                        {"Variable": "$.endpoint.EndpointConfigName", "StringEqualsPath": "$.run.endpointConfigName"},
                    ],
                    "Next": CHOOSE_AUTOSCALING,
                },
                {"Variable": "$.endpoint.EndpointStatus", "StringEquals": "Failed", "Next": ENDPOINT_FAILED},
                {
                    "Or": [
                        {"Variable": "$.endpoint.EndpointStatus", "StringEquals": status}
                        for status in ("OutOfService", "Deleting", "UpdateRollbackFailed")
                    ],
                    "Next": ENDPOINT_UNAVAILABLE,
                },
                # InService on another config: the update failed or an alarm fired, and SageMaker rolled back.
                {"Variable": "$.endpoint.EndpointStatus", "StringEquals": "InService", "Next": CHECK_ROLLBACK_REASON},
                {
                    "Variable": "$.polls.count",
                    "NumericGreaterThanEqualsPath": "$.config.endpointMaxPolls",
                    "Next": ENDPOINT_TIMED_OUT,
                },
            ],
            "Default": WAIT_FOR_ENDPOINT,
        },
        WAIT_FOR_ENDPOINT: {"Type": "Wait", "SecondsPath": "$.config.endpointPollSeconds", "Next": COUNT_POLL},
        COUNT_POLL: pass_state(
            DESCRIBE_ENDPOINT, parameters={"count.$": "States.MathAdd($.polls.count, 1)"}, result_path="$.polls"
        ),
        ENDPOINT_FAILED: error_state(
            ENDPOINT_FAILED_ERROR,
            "Endpoint {} failed while deploying model package {}: {}",
            "$.endpoint.EndpointName",
            "$.package.arn",
            "$.endpoint.FailureReason",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        ENDPOINT_UNAVAILABLE: error_state(
            ENDPOINT_UNAVAILABLE_ERROR,
            "Endpoint {} became {} while deploying model package {}; see its events in the SageMaker console.",
            "$.endpoint.EndpointName",
            "$.endpoint.EndpointStatus",
            "$.package.arn",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        CHECK_ROLLBACK_REASON: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.endpoint.FailureReason", "IsPresent": True, "Next": ENDPOINT_ROLLED_BACK}],
            "Default": ENDPOINT_ROLLED_BACK_WITHOUT_REASON,
        },
        ENDPOINT_ROLLED_BACK: error_state(
            ENDPOINT_ROLLED_BACK_ERROR,
            "Updating endpoint {} to model package {} was rolled back; endpoint config {} (the previous model) keeps "
            "serving. SageMaker: {}",
            "$.endpoint.EndpointName",
            "$.package.arn",
            "$.endpoint.EndpointConfigName",
            "$.endpoint.FailureReason",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        ENDPOINT_ROLLED_BACK_WITHOUT_REASON: error_state(
            ENDPOINT_ROLLED_BACK_ERROR,
            "Updating endpoint {} to model package {} was rolled back; endpoint config {} (the previous model) keeps "
            "serving. The events of the endpoint in the SageMaker console say why.",
            "$.endpoint.EndpointName",
            "$.package.arn",
            "$.endpoint.EndpointConfigName",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        ENDPOINT_TIMED_OUT: error_state(
            ENDPOINT_TIMED_OUT_ERROR,
            "Endpoint {} was still {} after {} polls {} seconds apart.",
            "$.endpoint.EndpointName",
            "$.endpoint.EndpointStatus",
            "$.polls.count",
            "$.config.endpointPollSeconds",
            next_state=CHECK_NOTIFY_FAILURE,
        ),
        CHOOSE_AUTOSCALING: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.config.maxInstances", "NumericGreaterThan": 1, "Next": REGISTER_SCALABLE_TARGET}
            ],
            "Default": SUMMARIZE,
        },
        REGISTER_SCALABLE_TARGET: sdk_task(
            "applicationautoscaling:registerScalableTarget",
            {
                **autoscaling_target,
                "MinCapacity.$": "$.config.minInstances",
                "MaxCapacity.$": "$.config.maxInstances",
            },
            result_path=None,
            retriers=[retry(ANY_ERROR)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=PUT_SCALING_POLICY,
        ),
        PUT_SCALING_POLICY: sdk_task(
            "applicationautoscaling:putScalingPolicy",
            {
                **autoscaling_target,
                "PolicyName": spec.scaling_policy_name,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue.$": "$.config.invocationsPerInstance",
                    "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
                    "ScaleInCooldown": SCALE_IN_COOLDOWN_SECONDS,
                    "ScaleOutCooldown": SCALE_OUT_COOLDOWN_SECONDS,
                },
            },
            result_path=None,
            retriers=[retry(ANY_ERROR)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=SUMMARIZE,
        ),
    }


def _console_link(region: str) -> str:
    return format_string(
        f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{{}}",
        "$$.Execution.Id",
    )


def notify_states(spec: DeploySpec) -> dict[str, State]:
    """Summarize, notify (unless the caller notifies: ``notify`` false), then Succeed or Fail with the cause."""
    return {
        SUMMARIZE: pass_state(
            CHECK_NOTIFY,
            parameters={
                "status": "DEPLOYED",
                "endpointName": spec.endpoint_name,
                "modelPackageArn.$": "$.package.arn",
                "modelPackageVersion.$": "$.package.version",
                "modelName.$": "$.run.modelName",
                "endpointConfigName.$": "$.run.endpointConfigName",
                "endpointUpdated.$": "$.existingEndpoint.exists",
                "minInstances.$": "$.config.minInstances",
                "maxInstances.$": "$.config.maxInstances",
                "dataCapturePercent.$": "$.config.dataCapturePercent",
                "execution.$": "$$.Execution.Id",
                "console.$": _console_link(spec.region),
            },
            result_path="$.summary",
        ),
        CHECK_NOTIFY: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.config.notify", "BooleanEquals": True, "Next": NOTIFY_SUCCESS}],
            "Default": SUCCEEDED,
        },
        NOTIFY_SUCCESS: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject": f"{spec.name_prefix}: model deployed",
                "Message.$": "$.summary",
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=CHECK_NOTIFY_FAILURE,
            next_state=SUCCEEDED,
        ),
        # A Pass state ends with the summary as output (cfn-lint refuses OutputPath on Succeed).
        SUCCEEDED: {"Type": "Pass", "OutputPath": "$.summary", "End": True},
        # Invalid settings fail before $.config.notify is known to be a boolean: notify then.
        CHECK_NOTIFY_FAILURE: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.config.notify", "BooleanEquals": False, "Next": CHECK_ERROR_NAME}],
            "Default": NOTIFY_FAILURE,
        },
        NOTIFY_FAILURE: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject": f"{spec.name_prefix}: deployment failed",
                "Message": {
                    "status": "FAILED",
                    "error.$": f"{ERROR_PATH}.Error",
                    "cause.$": f"{ERROR_PATH}.Cause",
                    "execution.$": "$$.Execution.Id",
                    "console.$": _console_link(spec.region),
                },
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=CHECK_ERROR_NAME,
            catch_result_path="$.notifyError",
            next_state=CHECK_ERROR_NAME,
        ),
        CHECK_ERROR_NAME: {
            "Type": "Choice",
            "Choices": [{"Variable": f"{ERROR_PATH}.Error", "StringMatches": "States.*", "Next": STEP_FAILED}],
            "Default": FAILED,
        },
        FAILED: {"Type": "Fail", "ErrorPath": f"{ERROR_PATH}.Error", "CausePath": f"{ERROR_PATH}.Cause"},
        STEP_FAILED: {
            "Type": "Fail",
            "Error": STEP_FAILED_ERROR,
            "CausePath": f"States.Format('{{}}: {{}}', {ERROR_PATH}.Error, {ERROR_PATH}.Cause)",
        },
    }


def deploy_definition(spec: DeploySpec) -> dict[str, Any]:
    """The deployment state machine's definition, with ``${...}`` placeholders for DefinitionSubstitutions."""
    if not 0 <= spec.bake_minutes * 60 <= 3600:
        raise ValueError(f"bakeMinutes must be 0..60, got {spec.bake_minutes}")
    states: dict[str, State] = {}
    for part in (settings_states(spec), package_states(spec), deploy_states(spec), notify_states(spec)):
        overlap = states.keys() & part.keys()
        if overlap:
            raise ValueError(f"state names used twice: {sorted(overlap)}")
        states.update(part)
    return {
        "Comment": (
            f"{spec.name_prefix}: deploy an approved model package of {spec.model_package_group} to endpoint "
            f"{spec.endpoint_name} (blue/green, {spec.bake_minutes} min baking, automatic rollback on alarms). "
            'Input {"modelPackageVersion": 3}, {"modelPackageArn": "..."} or {} for the newest approved version.'
        ),
        "StartAt": APPLY_DEFAULTS,
        "States": states,
    }
