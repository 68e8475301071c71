"""The request checker the state-machine tests rely on (tests/aws_requests.py) catches what AWS refuses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.aws_requests import integration_request, operation_of, request_errors, task_request_errors

EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:bincount-pipeline:retrain(2)"


def model_request(**changes: Any) -> dict[str, Any]:
    request = {
        "ModelName": "bincount-model-0123456789ab",
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/bincount-sagemaker",
        "PrimaryContainer": {"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.10-cpu"},
        "Tags": [{"Key": "bincount:run", "Value": "0123456789ab"}],
    }
    request.update(changes)
    return request


def test_a_valid_request_has_no_errors() -> None:
    assert request_errors("sagemaker", "CreateModel", model_request()) == []


def test_the_old_execution_tag_is_refused_for_a_valid_execution_name() -> None:
    # Step Functions allows "(", ")", "!" and "'" in execution names; SageMaker's tag values do not.
    errors = request_errors("sagemaker", "CreateModel", model_request(Tags=[{"Key": "x", "Value": EXECUTION_ARN}]))
    assert len(errors) == 1
    assert "Tags[0].Value" in errors[0] and "TagValue's pattern" in errors[0]


def without(request: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in names}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({**without(model_request(), "ModelName"), "modelName": "m"}, "member 'modelName' is spelled 'ModelName'"),
        (model_request(Colour="blue"), "unknown member 'Colour'"),
        (without(model_request(), "ModelName"), "required member 'ModelName' of CreateModelInput"),
        (model_request(ExecutionRoleArn=None), "expected a string"),
        (model_request(EnableNetworkIsolation="true"), "expected true or false"),
        (model_request(ModelName="m" * 64), "allows at most 63"),
        (model_request(ModelName="bincount_model"), "does not match ModelName's pattern"),  # only a prefix matches
        (model_request(ModelName="-model"), "does not match ModelName's pattern"),
        (model_request(Tags=[{"Key": "k", "Value": "v"}] * 51), "allows at most 50"),
        (model_request(PrimaryContainer={"Image": "i", "Mode": "MultiModels"}), "is not one of"),
    ],
    ids=["casing", "unknown", "required", "type", "boolean", "max-length", "partial", "pattern", "max-items", "enum"],
)
def test_each_kind_of_mistake_is_reported(request_: dict[str, Any], expected: str) -> None:
    errors = request_errors("sagemaker", "CreateModel", request_)
    assert any(expected in e for e in errors), errors


def test_numbers_and_hyperparameters() -> None:
    assert any(
        "above" in e and "maximum 100" in e
        for e in request_errors("sagemaker", "ListEndpoints", {"NameContains": "bincount", "MaxResults": 101})
    )
    job = {
        "TrainingJobName": "bincount-train-0123456789ab",
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/jobs/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "HyperParameters": {"epochs": 4},  # hyperparameters are strings
    }
    (error,) = request_errors("sagemaker", "CreateTrainingJob", job)
    assert "HyperParameters['epochs']" in error and "expected a string" in error
    assert request_errors("sagemaker", "CreateTrainingJob", {**job, "HyperParameters": {"epochs": "4"}}) == []


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("arn:aws:states:::sagemaker:createTrainingJob.sync", ("sagemaker", "CreateTrainingJob")),
        ("arn:aws:states:::sagemaker:createModel", ("sagemaker", "CreateModel")),
        ("arn:aws:states:::aws-sdk:s3:listObjectsV2", ("s3", "ListObjectsV2")),
        ("arn:aws:states:::aws-sdk:sfn:describeMapRun", ("stepfunctions", "DescribeMapRun")),
        ("arn:aws:states:::sns:publish", ("sns", "Publish")),
        ("arn:aws:states:::states:startExecution.sync:2", ("stepfunctions", "StartExecution")),
        (
            "arn:aws:states:::aws-sdk:applicationautoscaling:registerScalableTarget",
            ("application-autoscaling", "RegisterScalableTarget"),
        ),
    ],
)
def test_resources_map_to_their_api(resource: str, expected: tuple[str, str]) -> None:
    assert operation_of(resource) == expected
    assert request_errors(*expected, {}) is not None  # the operation exists in botocore's models


def test_the_sns_integration_sends_a_json_message_as_text() -> None:
    request = integration_request("arn:aws:states:::sns:publish", {"TopicArn": "arn", "Message": {"status": "ok"}})
    assert request["Message"] == '{"status": "ok"}'
    assert request_errors("sns", "Publish", request) == []


def test_the_lambda_integration_sends_a_json_payload_as_bytes() -> None:
    parameters = {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f", "Payload": {"input": "s3://b/p/"}}
    request = integration_request("arn:aws:states:::lambda:invoke", parameters)
    assert request["Payload"] == b'{"input": "s3://b/p/"}'
    assert request_errors("lambda", "Invoke", request) == []
    assert request_errors("lambda", "Invoke", parameters) != []


def test_step_functions_spells_every_member_in_pascal_case() -> None:
    # The Step Functions API itself is camelCase (mapRunArn); its aws-sdk integration takes MapRunArn.
    arn = "arn:aws:states:us-east-1:123456789012:mapRun:bincount-pipeline/CopyImages:0a1b2c3d"
    resource = "arn:aws:states:::aws-sdk:sfn:describeMapRun"
    assert task_request_errors(resource, {"MapRunArn": arn}) == []
    assert any("spelled 'MapRunArn'" in e for e in task_request_errors(resource, {"mapRunArn": arn}))
    assert request_errors("stepfunctions", "DescribeMapRun", {"mapRunArn": arn}) == []


def test_the_step_functions_integration_sends_a_json_input_as_text() -> None:
    resource = "arn:aws:states:::states:startExecution.sync:2"
    request = integration_request(
        resource, {"StateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:d", "Input": {}}
    )
    assert request["Input"] == "{}"
    assert (
        task_request_errors(resource, {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:d"}) == []
    )


def test_java_surrogate_pair_ranges_are_read_as_code_points() -> None:
    """Application Auto Scaling's ids are patterns with UTF-16 surrogate ranges, which Python's regexes refuse."""
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/bincount-endpoint/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    assert request_errors("application-autoscaling", "DeregisterScalableTarget", target) == []
    assert request_errors("application-autoscaling", "DeregisterScalableTarget", {**target, "ResourceId": "a\x00b"})
