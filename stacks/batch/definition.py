"""The Batch state machine's definition (docs/design.md §11): a shift's photos under an S3 prefix, counted by a
SageMaker Batch Transform job on the model the endpoint serves, then reconciled with the expected quantities.

Input: ``{"input": "s3://<bucket>/<prefix>/", "expected": "s3://<bucket>/<key>.csv"}`` (``expected`` optional).

ValidateInput -> FindEndpoint -> FindModel -> CountPhotos (CreateTransformJob: one photo per request, the endpoint's own
handler) -> WaitForCounts / CheckCounts / CountsDone? (DescribeTransformJob polled with Wait + Choice, as the deploy
states poll the endpoint) -> Reconcile (the Lambda running :mod:`bincount.serving.reconcile`: counts.csv and
summary.json beside the transform output) -> NotifySuccess (the summary) -> Succeeded. Any failure: NotifyFailure ->
Failed with the cause. Inputs and expectations outside the allowed buckets (the data bucket and ``batchInputBuckets``)
are refused before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stacks.pipeline.asl import (
    ANY_ERROR,
    DATA_BUCKET,
    ERROR_PATH,
    SAGEMAKER_API_ERRORS,
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
from stacks.pipeline.requests import RUN_TAG

RECONCILE_FUNCTION = "${ReconcileFunctionArn}"
PLACEHOLDERS: tuple[str, ...] = ("DataBucket", "NotificationTopicArn", "ReconcileFunctionArn")
OUTPUT_PREFIX = "batch-output/"
"""Where each execution's transform output, counts.csv and summary.json go: ``batch-output/<job name>/``."""
CONTENT_TYPE = "application/x-image"
MAX_PAYLOAD_MB = 6  # InvokeEndpoint's limit too: one photo per request

VALIDATE_INPUT = "ValidateInput"
CHECK_EXPECTED = "CheckExpected"
INVALID_INPUT = "InvalidInput"
NO_EXPECTED = "NoExpected"
NAME_JOB = "NameJob"
NAME_OUTPUT = "NameOutput"
CHECK_BUCKET = "CheckBucket"
CHECK_EXPECTED_BUCKET = "CheckExpectedBucket"
BUCKET_REFUSED = "BucketRefused"
FIND_ENDPOINT = "FindEndpoint"
FIND_MODEL = "FindModel"
COUNT_PHOTOS = "CountPhotos"
WAIT_FOR_COUNTS = "WaitForCounts"
CHECK_COUNTS = "CheckCounts"
COUNTS_DONE = "CountsDone"
WHY_FAILED = "WhyFailed"
COUNTS_FAILED = "CountsFailed"
COUNTS_STOPPED = "CountsStopped"
RECONCILE = "Reconcile"
NOTIFY_SUCCESS = "NotifySuccess"
SUCCEEDED = "Succeeded"
NOTIFY_FAILURE = "NotifyFailure"
FAILED = "Failed"

INVALID_INPUT_ERROR = "InvalidInput"
BUCKET_REFUSED_ERROR = "BucketNotAllowed"
TRANSFORM_FAILED_ERROR = "TransformJobFailed"


@dataclass(frozen=True)
class BatchSpec:
    """What the definition needs from the settings."""

    name_prefix: str
    endpoint_name: str
    instance_type: str
    extra_buckets: tuple[str, ...] = ()
    poll_seconds: int = 60


def _bucket_choice(variable: str, spec: BatchSpec, next_state: str) -> State:
    """A Choice rule: ``variable`` (a bucket name) is the data bucket or one of ``batchInputBuckets``."""
    allowed = [DATA_BUCKET, *spec.extra_buckets]
    rules = [{"Variable": variable, "StringEquals": bucket} for bucket in allowed]
    return {"Or": rules, "Next": next_state} if len(rules) > 1 else {**rules[0], "Next": next_state}


def input_states(spec: BatchSpec) -> dict[str, State]:
    """ValidateInput: s3:// URLs, the job's name and output folder, and the buckets the state machine may read."""
    job = f"{spec.name_prefix}-batch-{{}}{{}}"  # + 8 and 4 hex digits of a fresh UUID
    uuid = ("$.run.uuid[0]", "$.run.uuid[1]")
    return {
        VALIDATE_INPUT: {
            "Type": "Choice",
            # One test per rule, in order: a rule never reads a variable that an earlier rule found missing or not text.
            "Choices": [
                {"Not": {"Variable": "$.input", "IsPresent": True}, "Next": INVALID_INPUT},
                {"Not": {"Variable": "$.input", "IsString": True}, "Next": INVALID_INPUT},
                {"Variable": "$.input", "StringMatches": "s3://*/*", "Next": CHECK_EXPECTED},
            ],
            "Default": INVALID_INPUT,
        },
        CHECK_EXPECTED: {
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": "$.expected", "IsPresent": True}, "Next": NO_EXPECTED},
                {"Not": {"Variable": "$.expected", "IsString": True}, "Next": INVALID_INPUT},
                {"Variable": "$.expected", "StringMatches": "s3://*/*", "Next": NAME_JOB},
            ],
            "Default": INVALID_INPUT,
        },
        NO_EXPECTED: pass_state(NAME_JOB, result="", result_path="$.expected"),
        INVALID_INPUT: error_state(
            INVALID_INPUT_ERROR,
            "The execution input needs input: the S3 prefix of the photos (s3://bucket/prefix/), and may give "
            "expected: an S3 CSV with columns id,expected (s3://bucket/expected.csv). Got: {}",
            "States.JsonToString($)",
            next_state=NOTIFY_FAILURE,
        ),
        NAME_JOB: pass_state(
            NAME_OUTPUT,
            parameters={
                "inputBucket.$": "States.ArrayGetItem(States.StringSplit($.input, '/'), 1)",
                # '/-/-' appended: an empty expected (none given) still splits into two parts.
                "expectedBucket.$": (
                    "States.ArrayGetItem(States.StringSplit(States.Format('{}/-/-', $.expected), '/'), 1)"
                ),
                "uuid.$": "States.StringSplit(States.UUID(), '-')",
            },
            result_path="$.run",
        ),
        NAME_OUTPUT: pass_state(
            CHECK_BUCKET,
            parameters={
                "inputBucket.$": "$.run.inputBucket",
                "expectedBucket.$": "$.run.expectedBucket",
                "id.$": format_string("{}{}", *uuid),
                "jobName.$": format_string(job, *uuid),
                "output.$": format_string(f"s3://{DATA_BUCKET}/{OUTPUT_PREFIX}{job}/", *uuid),
            },
            result_path="$.run",
        ),
        CHECK_BUCKET: {
            "Type": "Choice",
            "Choices": [_bucket_choice("$.run.inputBucket", spec, CHECK_EXPECTED_BUCKET)],
            "Default": BUCKET_REFUSED,
        },
        CHECK_EXPECTED_BUCKET: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.expected", "StringEquals": "", "Next": FIND_ENDPOINT},
                _bucket_choice("$.run.expectedBucket", spec, FIND_ENDPOINT),
            ],
            "Default": BUCKET_REFUSED,
        },
        BUCKET_REFUSED: error_state(
            BUCKET_REFUSED_ERROR,
            f"The photos and the expected CSV must be in the data bucket {DATA_BUCKET} or in a bucket listed in the "
            "batchInputBuckets setting (cdk.json), which grants the batch read access to it; got input {} and "
            "expected {}. Copy them into the data bucket, or add the bucket to batchInputBuckets and deploy again.",
            "$.input",
            "$.expected",
            next_state=NOTIFY_FAILURE,
        ),
    }


def transform_states(spec: BatchSpec) -> dict[str, State]:
    """The model the endpoint serves (DescribeEndpoint -> its config -> ModelName), and a Batch Transform job on it
    with one photo per request, polled until it ends."""
    return {
        FIND_ENDPOINT: sdk_task(
            "sagemaker:describeEndpoint",
            {"EndpointName": spec.endpoint_name},
            result_selector={"configName.$": "$.EndpointConfigName", "status.$": "$.EndpointStatus"},
            result_path="$.endpoint",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=NOTIFY_FAILURE,
            next_state=FIND_MODEL,
        ),
        FIND_MODEL: sdk_task(
            "sagemaker:describeEndpointConfig",
            {"EndpointConfigName.$": "$.endpoint.configName"},
            # The first variant's model, as a string: an index in a path may yield a list in some interpreters.
            result_selector={"modelName.$": "States.ArrayGetItem($.ProductionVariants[*].ModelName, 0)"},
            result_path="$.model",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=NOTIFY_FAILURE,
            next_state=COUNT_PHOTOS,
        ),
        COUNT_PHOTOS: sagemaker_task(
            "createTransformJob",
            transform_request(spec),
            next_state=WAIT_FOR_COUNTS,
            result_path=None,
            catch=NOTIFY_FAILURE,
        ),
        WAIT_FOR_COUNTS: {"Type": "Wait", "Seconds": spec.poll_seconds, "Next": CHECK_COUNTS},
        CHECK_COUNTS: sdk_task(
            "sagemaker:describeTransformJob",
            {"TransformJobName.$": "$.run.jobName"},
            result_selector={"status.$": "$.TransformJobStatus"},
            result_path="$.transform",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=NOTIFY_FAILURE,
            next_state=COUNTS_DONE,
        ),
        COUNTS_DONE: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.transform.status", "StringEquals": "Completed", "Next": RECONCILE},
                {"Variable": "$.transform.status", "StringEquals": "Failed", "Next": WHY_FAILED},
                {"Variable": "$.transform.status", "StringEquals": "Stopped", "Next": COUNTS_STOPPED},
            ],
            "Default": WAIT_FOR_COUNTS,
        },
        # A failed job has a FailureReason (a running one has none, so it is read only here).
        WHY_FAILED: sdk_task(
            "sagemaker:describeTransformJob",
            {"TransformJobName.$": "$.run.jobName"},
            result_selector={"status.$": "$.TransformJobStatus", "reason.$": "$.FailureReason"},
            result_path="$.transform",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=NOTIFY_FAILURE,
            next_state=COUNTS_FAILED,
        ),
        COUNTS_FAILED: error_state(
            TRANSFORM_FAILED_ERROR,
            "The Batch Transform job {} failed: {}. A photo the model refuses (not a JPEG or PNG, over 6 MB) fails the "
            "whole job: keep only photos under the input prefix.",
            "$.run.jobName",
            "$.transform.reason",
            next_state=NOTIFY_FAILURE,
        ),
        COUNTS_STOPPED: error_state(
            TRANSFORM_FAILED_ERROR,
            "The Batch Transform job {} was stopped.",
            "$.run.jobName",
            next_state=NOTIFY_FAILURE,
        ),
    }


def transform_request(spec: BatchSpec) -> dict[str, Any]:
    """CreateTransformJob: every object under the input prefix is one request (SplitType None, SingleRecord), sent
    as application/x-image to the endpoint's model; each answer lands at ``<output>/<key>.out``."""
    return {
        "TransformJobName.$": "$.run.jobName",
        "ModelName.$": "$.model.modelName",
        "BatchStrategy": "SingleRecord",
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": "$.input"}},
            "ContentType": CONTENT_TYPE,
            "CompressionType": "None",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath.$": "$.run.output", "Accept": "application/json", "AssembleWith": "None"},
        "TransformResources": {"InstanceType": spec.instance_type, "InstanceCount": 1},
        "Tags": [{"Key": RUN_TAG, "Value.$": "$.run.id"}],
    }


def reconcile_states(spec: BatchSpec) -> dict[str, State]:
    """Reconcile (the Lambda), then the notification carrying the summary."""
    return {
        RECONCILE: task(
            "arn:aws:states:::lambda:invoke",
            {
                "FunctionName": RECONCILE_FUNCTION,
                "Payload": {
                    "input.$": "$.input",
                    "expected.$": "$.expected",
                    "output.$": "$.run.output",
                    "jobName.$": "$.run.jobName",
                },
            },
            result_selector={"summary.$": "$.Payload"},
            result_path="$.reconciled",
            retriers=[retry(("Lambda.ServiceException", "Lambda.TooManyRequestsException"), interval=2, attempts=3)],
            catch=NOTIFY_FAILURE,
            next_state=NOTIFY_SUCCESS,
        ),
        NOTIFY_SUCCESS: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject": f"{spec.name_prefix}: batch counted",
                "Message.$": "$.reconciled.summary",
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=NOTIFY_FAILURE,
            next_state=SUCCEEDED,
        ),
        SUCCEEDED: {"Type": "Pass", "OutputPath": "$.reconciled.summary", "End": True},
        NOTIFY_FAILURE: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject": f"{spec.name_prefix}: batch failed",
                "Message": {"status": "FAILED", "error.$": f"{ERROR_PATH}.Error", "cause.$": f"{ERROR_PATH}.Cause"},
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=FAILED,
            catch_result_path="$.notifyError",
            next_state=FAILED,
        ),
        FAILED: {
            "Type": "Fail",
            "Error": "BatchFailed",
            "CausePath": f"States.Format('{{}}: {{}}', {ERROR_PATH}.Error, {ERROR_PATH}.Cause)",
        },
    }


def batch_definition(spec: BatchSpec) -> dict[str, Any]:
    """The whole definition, with ``${...}`` placeholders for DefinitionSubstitutions."""
    states: dict[str, State] = {}
    for part in (input_states(spec), transform_states(spec), reconcile_states(spec)):
        states.update(part)
    return {
        "Comment": (
            f"{spec.name_prefix}: count a shift of photos with the model endpoint {spec.endpoint_name} serves (Batch "
            'Transform) and reconcile with expected quantities. Start with {"input": "s3://<bucket>/<prefix>/", '
            '"expected": "s3://<bucket>/expected.csv"}; counts.csv and summary.json land beside the output.'
        ),
        "StartAt": VALIDATE_INPUT,
        "States": states,
    }
