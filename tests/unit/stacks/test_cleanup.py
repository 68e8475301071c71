"""The cleanup custom resource's handler: what `cdk destroy` removes, against moto and botocore's Stubber."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.sagemaker.responses import SageMakerResponse

from stacks.cleanup_lambda import cleanup

REGION = "us-east-1"
PROPERTIES = {
    "NamePrefix": "bincount",
    "EndpointName": "bincount-endpoint",
    "StateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:bincount-pipeline",
    "DeployStateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:bincount-deploy",
    "ModelPackageGroupName": "bincount-models",
    "ScalableTargetId": "endpoint/bincount-endpoint/variant/AllTraffic",
    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
}


def event(request_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/put",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Bincount/1",
        "RequestId": "request-1",
        "LogicalResourceId": "Cleanup",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:x", **PROPERTIES},
        **extra,
    }


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the handler answers CloudFormation (instead of a PUT to the pre-signed URL)."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        cleanup,
        "send_response",
        lambda e, status, reason, physical_id: sent.append({"Status": status, "Reason": reason, "Id": physical_id}),
    )
    return sent


def _delete_model_package(self: SageMakerResponse) -> ActionResult:
    """DeleteModelPackage, which moto lacks."""
    backend = self.sagemaker_backend
    package = backend.describe_model_package(self._get_param("ModelPackageName"))
    del backend.model_packages[package.arn]
    return ActionResult({})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(SageMakerResponse, "delete_model_package", _delete_model_package, raising=False)
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def deployed(sagemaker: Any, *, with_endpoint: bool = True) -> str:
    """What two pipeline runs left (and a third still running), plus someone else's resources that must survive.

    Returns the running execution's ARN.
    """
    for name in ("bincount-model-aaa", "bincount-model-bbb", "other-model"):
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"},
        )
    for name, model in (
        ("bincount-config-aaa", "bincount-model-aaa"),
        ("bincount-config-bbb", "bincount-model-bbb"),
        ("other-config", "other-model"),
    ):
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.t2.medium",
                }
            ],
        )
    if with_endpoint:
        sagemaker.create_endpoint(EndpointName="bincount-endpoint", EndpointConfigName="bincount-config-bbb")
    sagemaker.create_endpoint(EndpointName="other-endpoint", EndpointConfigName="other-config")
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName="/aws/sagemaker/Endpoints/bincount-endpoint")
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="bincount-pipeline",
        roleArn="arn:aws:iam::123456789012:role/r",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
    )["stateMachineArn"]
    assert machine == PROPERTIES["StateMachineArn"]
    deployments = sfn.create_state_machine(
        name="bincount-deploy",
        roleArn="arn:aws:iam::123456789012:role/r",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    assert deployments == PROPERTIES["DeployStateMachineArn"]
    # Two registered versions of the stack's group, one of another group.
    for group, versions in (("bincount-models", 2), ("other-models", 1)):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
        for _ in range(versions):
            sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelApprovalStatus="Approved",
                InferenceSpecification={
                    "Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m.tar.gz"}],
                    "SupportedContentTypes": ["image/jpeg"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            )
    # Autoscaling of the endpoint's variant, and of someone else's.
    autoscaling = boto3.client("application-autoscaling", region_name=REGION)
    for endpoint in ("bincount-endpoint", "other-endpoint"):
        autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=f"endpoint/{endpoint}/variant/AllTraffic",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=1,
            MaxCapacity=2,
        )
    return sfn.start_execution(stateMachineArn=machine)["executionArn"]


def test_delete_removes_the_endpoint_its_configs_models_and_logs_and_nothing_else(
    aws: Any, responses: list[dict[str, Any]]
) -> None:
    running = deployed(aws)

    cleanup.handler(event("Delete", PhysicalResourceId="bincount-cleanup"), None)

    (response,) = responses
    assert (response["Status"], response["Id"]) == ("SUCCESS", "bincount-cleanup")
    assert json.loads(response["Reason"]) == {
        "executions": [running],
        "jobs": [],
        "autoscaling": ["endpoint/bincount-endpoint/variant/AllTraffic"],
        "endpoint": ["bincount-endpoint"],
        "configsAndModels": ["bincount-config-aaa", "bincount-config-bbb", "bincount-model-aaa", "bincount-model-bbb"],
        "logGroups": ["/aws/sagemaker/Endpoints/bincount-endpoint"],
        "modelVersions": [
            f"arn:aws:sagemaker:{REGION}:123456789012:model-package/bincount-models/1",
            f"arn:aws:sagemaker:{REGION}:123456789012:model-package/bincount-models/2",
        ],
    }
    assert aws.list_model_packages(ModelPackageGroupName="bincount-models")["ModelPackageSummaryList"] == []
    assert len(aws.list_model_packages(ModelPackageGroupName="other-models")["ModelPackageSummaryList"]) == 1
    targets = boto3.client("application-autoscaling", region_name=REGION).describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert [t["ResourceId"] for t in targets] == ["endpoint/other-endpoint/variant/AllTraffic"]
    assert [e["EndpointName"] for e in aws.list_endpoints()["Endpoints"]] == ["other-endpoint"]
    assert [c["EndpointConfigName"] for c in aws.list_endpoint_configs()["EndpointConfigs"]] == ["other-config"]
    assert [m["ModelName"] for m in aws.list_models()["Models"]] == ["other-model"]
    assert boto3.client("logs", region_name=REGION).describe_log_groups()["logGroups"] == []
    assert boto3.client("stepfunctions", region_name=REGION).describe_execution(executionArn=running)["status"] == (
        "ABORTED"
    )


def test_delete_without_a_deployed_endpoint_succeeds(aws: Any, responses: list[dict[str, Any]]) -> None:
    deployed(aws, with_endpoint=False)

    cleanup.handler(event("Delete", PhysicalResourceId="bincount-cleanup"), None)

    assert responses[0]["Status"] == "SUCCESS"
    assert json.loads(responses[0]["Reason"])["endpoint"] == []
    assert [m["ModelName"] for m in aws.list_models()["Models"]] == ["other-model"]


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_touch_nothing(aws: Any, responses: list[dict[str, Any]], request_type: str) -> None:
    deployed(aws)

    cleanup.handler(event(request_type), None)

    assert responses == [{"Status": "SUCCESS", "Reason": "nothing to do", "Id": "bincount-cleanup"}]
    assert len(aws.list_models()["Models"]) == 3


def test_a_failure_is_reported_to_cloudformation(
    monkeypatch: pytest.MonkeyPatch, responses: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no credentials")

    monkeypatch.setattr(cleanup, "clean_up", broken)

    cleanup.handler(event("Delete", PhysicalResourceId="bincount-cleanup"), None)

    assert responses == [
        {"Status": "FAILED", "Reason": "cleanup failed: RuntimeError: no credentials", "Id": "bincount-cleanup"}
    ]


class BusyEndpoint:
    """A SageMaker client whose endpoint is Updating for ``busy_polls`` describes."""

    def __init__(self, busy_polls: int) -> None:
        self.busy_polls = busy_polls
        self.deleted = False

    def describe_endpoint(self, EndpointName: str) -> dict[str, str]:  # noqa: N803 (boto3's parameter name)
        if self.busy_polls:
            self.busy_polls -= 1
            return {"EndpointStatus": "Updating"}
        return {"EndpointStatus": "InService"}

    def delete_endpoint(self, EndpointName: str) -> None:  # noqa: N803
        self.deleted = True


def test_waits_while_the_endpoint_is_busy_then_deletes_it() -> None:
    sleeps: list[float] = []
    client = BusyEndpoint(busy_polls=3)
    assert cleanup.delete_endpoint(client, "bincount-endpoint", sleep=sleeps.append)
    assert client.deleted and sleeps == [cleanup.WAIT_SECONDS] * 3


def test_gives_up_on_an_endpoint_that_stays_busy() -> None:
    with pytest.raises(TimeoutError, match="delete it by hand"):
        cleanup.delete_endpoint(BusyEndpoint(busy_polls=10**6), "bincount-endpoint", sleep=lambda s: None)


def test_stops_running_executions_and_the_prefix_jobs() -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    sagemaker = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    execution = f"arn:aws:states:{REGION}:123456789012:execution:bincount-pipeline:run-1"
    finished = f"arn:aws:states:{REGION}:123456789012:execution:bincount-pipeline:run-0"
    summary = {"stateMachineArn": PROPERTIES["StateMachineArn"], "status": "RUNNING", "startDate": 0}
    with Stubber(sfn) as states, Stubber(sagemaker) as jobs:
        states.add_response(
            "list_executions",
            {
                "executions": [
                    {**summary, "executionArn": execution, "name": "run-1"},
                    {**summary, "executionArn": finished, "name": "run-0"},
                ]
            },
            {"stateMachineArn": PROPERTIES["StateMachineArn"], "statusFilter": "RUNNING"},
        )
        states.add_response(
            "stop_execution", {"stopDate": 0}, {"executionArn": execution, "cause": "stack deleted (cdk destroy)"}
        )
        states.add_client_error(
            "stop_execution",
            "ExecutionDoesNotExist",
            expected_params={"executionArn": finished, "cause": "stack deleted (cdk destroy)"},
        )
        jobs.add_response(
            "list_hyper_parameter_tuning_jobs",
            {"HyperParameterTuningJobSummaries": [_tuning("bincount-hpo-abc"), _tuning("bincount-other")]},
            {"NameContains": "bincount-", "StatusEquals": "InProgress"},
        )
        jobs.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": "bincount-hpo-abc"})
        jobs.add_response(
            "list_training_jobs",
            {"TrainingJobSummaries": [_training("bincount-train-abc"), _training("xbincount-train-abc")]},
            {"NameContains": "bincount-", "StatusEquals": "InProgress"},
        )
        jobs.add_response("stop_training_job", {}, {"TrainingJobName": "bincount-train-abc"})

        assert cleanup.stop_executions(sfn, PROPERTIES["StateMachineArn"]) == [execution]
        assert cleanup.stop_jobs(sagemaker, "bincount") == ["bincount-hpo-abc", "bincount-train-abc"]
        states.assert_no_pending_responses()
        jobs.assert_no_pending_responses()


def test_other_errors_still_fail_the_cleanup() -> None:
    class Denied:
        def describe_endpoint(self, EndpointName: str) -> None:  # noqa: N803
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeEndpoint")

    with pytest.raises(ClientError, match="AccessDenied"):
        cleanup.delete_endpoint(Denied(), "bincount-endpoint")


def _tuning(name: str) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:::{name}",
        "HyperParameterTuningJobStatus": "InProgress",
        "Strategy": "Bayesian",
        "CreationTime": 0,
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
    }


def _training(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:::{name}",
        "CreationTime": 0,
        "TrainingJobStatus": "InProgress",
    }


def test_the_answer_is_put_to_cloudformations_url() -> None:
    received: list[tuple[str, bytes]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/response?signature=abc"
    cleanup.send_response(event("Delete", ResponseURL=url), "SUCCESS", "done", "bincount-cleanup")
    thread.join(timeout=10)
    server.server_close()

    ((path, body),) = received
    assert path == "/response?signature=abc"
    assert json.loads(body) == {
        "Status": "SUCCESS",
        "Reason": "done",
        "PhysicalResourceId": "bincount-cleanup",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Bincount/1",
        "RequestId": "request-1",
        "LogicalResourceId": "Cleanup",
    }
