"""The synthesized deployment state machine, executed in moto: registered package -> blue/green endpoint.

Runs the deployed definition as is, with test_cdk_state_machine's shims (UpdateEndpoint, which moto lacks; the AWS
SDK integration's member casing) and :func:`install_moto_boundary`'s. Every request any Task state sends is checked
against botocore's service model (:mod:`tests.support.aws_requests`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern
from moto.sagemaker.models import SageMakerModelBackend
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from stacks.pipeline import deploy as d
from tests.functional.stacks.test_state_machine import (
    ACCOUNT,
    BUCKET,
    ENDPOINT,
    SAGEMAKER_ROLE,
    TOPIC_ARN,
    TOPIC_NAME,
    EndpointBehaviour,
    TaskRequest,
    existing_endpoint,
    install_step_functions_shims,
    record_requests,
)
from tests.support.aws_requests import operation_of
from tests.support.cdk import REGION, Synthesized, synthesized

GROUP = "bincount-models"
DEPLOY_NAME = "bincount-deploy"
DEPLOY_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{DEPLOY_NAME}"
DEPLOY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/bincount-deploy"
PACKAGE_PREFIX = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/"
DEPLOY_SUBSTITUTIONS = {
    "DataBucket": BUCKET,
    "SageMakerRoleArn": SAGEMAKER_ROLE,
    "NotificationTopicArn": TOPIC_ARN,
    "ModelPackageArnPrefix": PACKAGE_PREFIX,
}
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/bincount-serving:1"
RESOURCE_ID = f"endpoint/{ENDPOINT}/variant/AllTraffic"
FAST = {"endpointPollSeconds": 0}
ROLLBACK_REASON = "Alarm bincount-endpoint-5xx fired during baking: traffic went back to the previous fleet."


def state_machine_definition(synth: Synthesized, construct_id: str, substitutions: dict[str, str]) -> str:
    """A state machine's DefinitionString with its DefinitionSubstitutions filled in, by its logical id's prefix."""
    (properties,) = [
        r["Properties"]
        for logical_id, r in synth.resources("AWS::StepFunctions::StateMachine").items()
        if logical_id.startswith(construct_id)
    ]
    assert set(properties["DefinitionSubstitutions"]) == set(substitutions)
    text = properties["DefinitionString"]
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text
    return text


def install_moto_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where moto's Step Functions differs from AWS's at the service boundary.

    - Application Auto Scaling: Step Functions names it ``applicationautoscaling``, boto3 ``application-autoscaling``;
    - UpdateModelPackage keeps the metadata it is not given (moto drops it);
    - ``states:startExecution(.sync:2)``: AWS takes and returns the Step Functions integration's PascalCase members
      (``StateMachineArn``, ``Input``; ``ExecutionArn``, ``Output``, ``Error``, ``Cause``); moto hands them to boto3
      unchanged (whose members are camelCase) and returns boto3's. Translated here, both ways, top level only.
    """
    overrides = {**StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES}
    overrides["applicationautoscaling"] = "application-autoscaling"
    monkeypatch.setattr(StateTaskService, "_SERVICE_NAME_SFN_TO_BOTO_OVERRIDES", overrides)
    normalise_parameters = StateTaskServiceSfn._normalise_parameters

    def to_boto(self: StateTaskServiceSfn, parameters: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        normalise_parameters(self, parameters, *args, **kwargs)
        for key in list(parameters):
            parameters[key[:1].lower() + key[1:]] = parameters.pop(key)

    def to_sfn(self: StateTaskServiceSfn, response: Any, *args: Any, **kwargs: Any) -> None:
        for key in list(response):
            response[key[:1].upper() + key[1:]] = response.pop(key)

    monkeypatch.setattr(StateTaskServiceSfn, "_normalise_parameters", to_boto)
    monkeypatch.setattr(StateTaskServiceSfn, "_normalise_response", to_sfn)

    # UpdateModelPackage without CustomerMetadataProperties keeps them on AWS; moto drops them.
    update_model_package = SageMakerModelBackend.update_model_package

    def keep_metadata(backend: SageMakerModelBackend, model_package_arn: str, *args: Any, **kwargs: Any) -> str:
        package = backend.describe_model_package(model_package_arn)
        kept = package.customer_metadata_properties
        arn = update_model_package(backend, model_package_arn, *args, **kwargs)
        if package.customer_metadata_properties is None:
            package.customer_metadata_properties = kept
        return arn

    monkeypatch.setattr(SageMakerModelBackend, "update_model_package", keep_metadata)


def rolled_back_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the update rolls back (EndpointBehaviour), DescribeEndpoint also carries SageMaker's FailureReason."""
    describe = SageMakerModelBackend.describe_endpoint

    def with_reason(backend: SageMakerModelBackend, endpoint_name: str) -> Any:
        endpoint = backend.endpoints[endpoint_name]
        if endpoint.endpoint_status == "Updating":
            endpoint.failure_reason = ROLLBACK_REASON
        return describe(backend, endpoint_name)

    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", with_reason)


@dataclass
class Execution:
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    states: list[str]

    def entered(self, state: str) -> bool:
        return state in self.states


@dataclass
class Lifecycle:
    """moto with the model package group, the topic and the deployment state machine."""

    sfn: Any
    sagemaker: Any
    autoscaling: Any
    sent: list[TaskRequest]  # every request any Task state sent (test_state_machine.record_requests)
    queue_url: str
    arn: str

    def register(self, status: str = "Approved", approval: str = "auto") -> str:
        """A model version as RegisterModel creates it; returns its ARN."""
        return self.sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/jobs/training/t/output/model.tar.gz"}],
                "SupportedContentTypes": ["image/jpeg"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={"approval": approval},
        )["ModelPackageArn"]

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The Parameters each Task state calling ``operation`` sent, in order, as the state rendered them."""
        return [r.parameters for r in self.sent if operation_of(r.resource)[1] == operation]

    def run(self, execution_input: dict[str, Any], timeout: float = 60) -> Execution:
        """Start an execution and wait for it to end; every request it sent must be valid for AWS."""
        first_request = len(self.sent)
        arn = self.sfn.start_execution(
            stateMachineArn=self.arn, name=str(uuid.uuid4()), input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        output = described.get("output")
        invalid = [error for request in self.sent[first_request:] for error in request.errors()]
        assert not invalid, "the deployment sent requests AWS would refuse:\n" + "\n".join(invalid)
        return Execution(
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            states=[e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e],
        )

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while batch := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for m in batch:
                body = json.loads(m["Body"])
                found.append({"Subject": body.get("Subject"), "Message": json.loads(body["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return found

    def endpoint_config(self) -> dict[str, Any]:
        name = self.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
        return self.sagemaker.describe_endpoint_config(EndpointConfigName=name)

    def scalable_targets(self) -> list[dict[str, Any]]:
        return self.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def create_lifecycle(
    synth: Synthesized, monkeypatch: pytest.MonkeyPatch, sent: list[TaskRequest] | None = None
) -> Lifecycle:
    """Inside mock_aws: the group, the topic with a queue subscribed, the deployment state machine."""
    install_moto_boundary(monkeypatch)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    sns = boto3.client("sns", region_name=REGION)
    if not sns.list_topics()["Topics"]:
        sns.create_topic(Name=TOPIC_NAME)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="deploy-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=queue_arn)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = state_machine_definition(synth, "LifecycleDeployStateMachine", DEPLOY_SUBSTITUTIONS)
    arn = sfn.create_state_machine(name=DEPLOY_NAME, definition=definition, roleArn=DEPLOY_ROLE)["stateMachineArn"]
    assert arn == DEPLOY_ARN
    return Lifecycle(
        sfn=sfn,
        sagemaker=sagemaker,
        autoscaling=boto3.client("application-autoscaling", region_name=REGION),
        sent=sent if sent is not None else [],
        queue_url=queue_url,
        arn=arn,
    )


@pytest.fixture
def lifecycle(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory: ``endpoint`` how endpoints behave, ``context`` cdk.json overrides at synth."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):

        def factory(*, endpoint: EndpointBehaviour | None = None, context: dict[str, Any] | None = None) -> Lifecycle:
            (endpoint or EndpointBehaviour()).install(monkeypatch)
            sent = record_requests(monkeypatch)
            install_step_functions_shims(monkeypatch)
            return create_lifecycle(synthesized(**(context or {})), monkeypatch, sent)

        yield factory


# --- scenarios -----------------------------------------------------------------------------------------------


def test_a_version_deploys_to_a_new_endpoint_from_its_package(lifecycle: Any) -> None:
    life = lifecycle()
    life.register()
    arn = life.register()

    run = life.run({**FAST, "modelPackageVersion": 2})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(d.USE_PACKAGE_VERSION) and run.entered(d.CREATE_ENDPOINT)
    (model_request,) = life.of("CreateModel")
    assert model_request["PrimaryContainer"] == {"ModelPackageName": arn}
    config = life.endpoint_config()
    assert config["ProductionVariants"][0]["ModelName"] == model_request["ModelName"]
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 1
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.t2.medium"
    assert "DataCaptureConfig" not in life.of("CreateEndpointConfig")[0]  # capture is opt-in
    assert life.scalable_targets() == [] and not run.entered(d.REGISTER_SCALABLE_TARGET)
    assert run.output["modelPackageVersion"] == 2 and run.output["modelPackageArn"] == arn
    assert run.output["endpointUpdated"] is False
    (notice,) = life.notifications()
    assert notice["Subject"] == "bincount: model deployed" and notice["Message"] == run.output


def test_an_update_is_blue_green_with_baking_and_rollback_alarms(lifecycle: Any) -> None:
    life = lifecycle()
    existing_endpoint(life.sagemaker)
    life.register()

    run = life.run(FAST)  # {}: the newest approved version

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(d.FIND_LATEST_APPROVED) and run.entered(d.UPDATE_ENDPOINT)
    assert not run.entered(d.PAUSE_AUTOSCALING)  # nothing registered to pause
    (update,) = life.of("UpdateEndpoint")
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600},
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 4200,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "bincount-endpoint-5xx"}, {"AlarmName": "bincount-endpoint-model-latency"}]
        },
    }
    assert run.output["endpointUpdated"] is True


def test_bake_minutes_sets_the_baking_period(lifecycle: Any) -> None:
    life = lifecycle(context={"bakeMinutes": 30})
    existing_endpoint(life.sagemaker)
    life.register()

    run = life.run(FAST)

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    policy = life.of("UpdateEndpoint")[0]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"] == 1800
    assert policy["MaximumExecutionTimeoutInSeconds"] == 1800 + d.PROVISIONING_SECONDS


def test_a_rolled_back_update_fails_with_the_cause_and_the_old_model_keeps_serving(
    lifecycle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    life = lifecycle(endpoint=EndpointBehaviour(update_rolls_back=True))
    rolled_back_with_reason(monkeypatch)
    existing_endpoint(life.sagemaker)
    life.register()

    run = life.run(FAST)

    assert run.status == "FAILED" and run.error == d.ENDPOINT_ROLLED_BACK_ERROR, (run.error, run.cause)
    assert "endpoint config bincount-config-previous (the previous model) keeps serving" in run.cause
    assert ROLLBACK_REASON in run.cause
    endpoint = life.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "bincount-config-previous"
    assert not run.entered(d.REGISTER_SCALABLE_TARGET)
    (notice,) = life.notifications()
    assert notice["Subject"] == "bincount: deployment failed"
    assert notice["Message"]["error"] == d.ENDPOINT_ROLLED_BACK_ERROR and notice["Message"]["cause"] == run.cause


def test_autoscaling_is_registered_only_above_one_instance(lifecycle: Any) -> None:
    life = lifecycle()
    life.register()

    run = life.run({**FAST, "minInstances": 2, "maxInstances": 4, "invocationsPerInstance": 90})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert life.endpoint_config()["ProductionVariants"][0]["InitialInstanceCount"] == 2
    (target,) = life.scalable_targets()
    assert (target["ResourceId"], target["ScalableDimension"]) == (RESOURCE_ID, d.SCALABLE_DIMENSION)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    (policy,) = life.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert tracking["TargetValue"] == 90
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    # The next update pauses autoscaling first (SageMaker refuses some updates of a registered variant), then
    # registers it again.
    life.register()
    again = life.run({**FAST, "maxInstances": 3})
    assert again.status == "SUCCEEDED", (again.error, again.cause)
    assert again.states.index(d.PAUSE_AUTOSCALING) < again.states.index(d.UPDATE_ENDPOINT)
    assert again.states.index(d.UPDATE_ENDPOINT) < again.states.index(d.REGISTER_SCALABLE_TARGET)
    (target,) = life.scalable_targets()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)


def test_one_instance_leaves_autoscaling_off_and_removes_a_previous_registration(lifecycle: Any) -> None:
    life = lifecycle()
    life.register()
    assert life.run({**FAST, "maxInstances": 2}).status == "SUCCEEDED"

    run = life.run(FAST)

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.entered(d.PAUSE_AUTOSCALING) and not run.entered(d.REGISTER_SCALABLE_TARGET)
    assert life.scalable_targets() == []


def test_capture_is_configured_only_when_asked(lifecycle: Any) -> None:
    life = lifecycle()
    life.register()

    run = life.run({**FAST, "dataCapturePercent": 25})

    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.entered(d.CREATE_ENDPOINT_CONFIG_WITH_CAPTURE) and not run.entered(d.CREATE_ENDPOINT_CONFIG)
    (request,) = life.of("CreateEndpointConfig")
    assert request["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": f"s3://{BUCKET}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    assert run.output["dataCapturePercent"] == 25


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_approved_packages_deploy(lifecycle: Any, status: str) -> None:
    life = lifecycle()
    existing_endpoint(life.sagemaker)
    arn = life.register(status, approval="manual")

    run = life.run({**FAST, "modelPackageArn": arn})

    assert run.status == "FAILED" and run.error == d.NOT_APPROVED_ERROR
    assert f"Model package {arn} is {status}" in run.cause
    assert not run.entered(d.CREATE_MODEL)
    assert life.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "bincount-config-previous"


def test_manual_approval_deploys_once_a_person_approves(lifecycle: Any) -> None:
    life = lifecycle()
    arn = life.register("PendingManualApproval", approval="manual")
    assert life.run({**FAST, "modelPackageArn": arn}).status == "FAILED"  # waits for a person
    life.notifications()

    # A person approves; the ApprovedByPerson rule starts the deployment with this input.
    life.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    run = life.run({**FAST, "modelPackageArn": arn})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert life.of("CreateModel")[-1]["PrimaryContainer"] == {"ModelPackageName": arn}
    assert life.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"


def test_no_approved_version_fails_clearly(lifecycle: Any) -> None:
    life = lifecycle()
    life.register("Rejected")

    run = life.run(FAST)

    assert run.status == "FAILED" and run.error == d.NO_APPROVED_PACKAGE_ERROR
    assert f"{GROUP} has no approved version" in run.cause


@pytest.mark.parametrize(
    "bad", [{"minInstances": 0}, {"minInstances": 3, "maxInstances": 2}, {"dataCapturePercent": 101}, {"notify": "no"}]
)
def test_invalid_settings_fail_before_touching_anything(lifecycle: Any, bad: dict[str, Any]) -> None:
    life = lifecycle()
    life.register()

    run = life.run(bad)

    assert run.status == "FAILED" and run.error == d.INVALID_SETTINGS_ERROR
    assert not run.entered(d.DESCRIBE_PACKAGE)
    assert life.notifications()[0]["Message"]["error"] == d.INVALID_SETTINGS_ERROR


def test_the_rule_input_matches_the_event_it_acts_on() -> None:
    """ApprovedByPerson's pattern matches SageMaker's documented event for a manually approved version of the
    group and nothing else; its input is what the state machine reads."""
    synth = synthesized()
    rules = {
        logical_id: r["Properties"]
        for logical_id, r in synth.resources("AWS::Events::Rule").items()
        if logical_id.startswith("Lifecycle")
    }
    (approved,) = [r for k, r in rules.items() if k.startswith("LifecycleApprovedByPerson")]
    (rejected,) = [r for k, r in rules.items() if k.startswith("LifecycleRejectedByPerson")]
    arn = f"{PACKAGE_PREFIX}3"

    def event(status: str, approval: str = "manual", group: str = GROUP) -> dict[str, Any]:
        return {
            "version": "0",
            "id": "844e2571-85d4-695f-b930-0153b71dcb42",
            "detail-type": "SageMaker Model Package State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": "2026-12-04T17:00:14Z",
            "region": REGION,
            "resources": [arn],
            "detail": {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": 3,
                "ModelPackageArn": arn,
                "ModelApprovalStatus": status,
                "CustomerMetadataProperties": {"approval": approval},
            },
        }

    def matches(rule: dict[str, Any], e: dict[str, Any]) -> bool:
        return EventPattern.load(json.dumps(rule["EventPattern"])).matches_event(e)

    # moto's own matcher (its TestEventPattern API is not implemented).
    assert matches(approved, event("Approved"))
    assert not matches(approved, event("Approved", approval="auto"))  # the pipeline deploys those itself
    assert not matches(approved, event("Rejected"))
    assert not matches(approved, event("Approved", group="other-models"))
    assert matches(rejected, event("Rejected")) and not matches(rejected, event("Approved"))
    (target,) = approved["Targets"]
    assert target["InputTransformer"]["InputPathsMap"] == {"detail-ModelPackageArn": "$.detail.ModelPackageArn"}
    assert target["InputTransformer"]["InputTemplate"] == '{"modelPackageArn":<detail-ModelPackageArn>}'


def test_every_deployment_task_retries_and_every_failure_notifies_then_fails() -> None:
    asl = json.loads(synthesized().state_machine("Lifecycle")["Properties"]["DefinitionString"])
    states = asl["States"]
    for name, state in states.items():
        if state["Type"] == "Task":
            assert state["Retry"] and all(r["BackoffRate"] >= 2 for r in state["Retry"]), name
            (catch,) = state["Catch"]
            expected = d.CHECK_ERROR_NAME if name == d.NOTIFY_FAILURE else d.CHECK_NOTIFY_FAILURE
            assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], expected), name
    errors = [n for n, s in states.items() if s["Type"] == "Pass" and s.get("ResultPath") == "$.error"]
    assert errors and all(states[n]["Next"] == d.CHECK_NOTIFY_FAILURE for n in errors)
    assert {n for n, s in states.items() if s["Type"] == "Fail"} == {d.FAILED, d.STEP_FAILED}
    # Every transition lands on a state and every state is reachable.
    edges = {
        n: {s.get("Next"), s.get("Default"), *(c["Next"] for c in s.get("Choices", []) + s.get("Catch", []))} - {None}
        for n, s in states.items()
    }
    assert set().union(*edges.values()) <= set(states)
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        if (name := todo.pop()) not in seen:
            seen.add(name)
            todo.extend(edges[name])
    assert seen == set(states)
