"""The synthesized state machine, executed for real in moto's Step Functions interpreter.

The definition is the template's DefinitionString with the DefinitionSubstitutions filled in. Only the ``.sync``
states (ExtractFeatures, Tune, Train), which moto cannot run, are changed: each becomes its request-response twin (so
moto's SageMaker receives, and botocore validates, the very request the state sends) followed by a Pass state returning
a recorded Describe output of a finished job. Everything else runs as deployed: ApplyDefaults, the Distributed Map
reading the manifest from S3 and copying images with s3:copyObject, PickBest's JsonMerge, the gate, the endpoint
create-or-update and DescribeEndpoint polling, SNS notifications, the Fail state.

A few shims make moto's interpreter behave as Step Functions does: S3's errors are named ``S3.<Code>Exception``, the
AWS SDK integration passes the members on in the
API's own casing and hands the state the answer in PascalCase (Step Functions takes ``MapRunArn`` for the API's
``mapRunArn`` and returns ``ItemCounts`` for ``itemCounts``), and a state machine runs
more than one execution (moto deep-copies the state machine as an execution starts, and with it every execution
before, which no longer copies once a Distributed Map has run).

moto has no UpdateEndpoint; a small shim adds one (switch the config, status Updating), and endpoints pass through
Creating/Updating for one poll before InService, so the Wait loop runs too.

The pipeline registers the model and, when approved, runs the deployment state machine with ``.sync:2``: moto runs
that one too, as deployed (test_deployment.py), so an execution here covers training to endpoint.

Every request a Task state sends, in every scenario, is checked against AWS's definition of its API (botocore's
service model: members, required members, types, enums, lengths, ranges and patterns, ``tests/aws_requests.py``),
and the executions have awkward but valid names (``retrain(2)``, ``it's!``, 80 characters), as users name them.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.sagemaker.models import FakeEndpoint, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk_service,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import StateTaskService
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)

from bincount.data.manifest import SOURCE_BUCKET, build_manifest, load_file_list
from bincount.training.metrics import IMAGES_PER_SECOND, RULE_NAMES, TEST_ACCURACY, TUNING_OBJECTIVE
from stacks.pipeline import definition as d
from stacks.pipeline import deploy as dp
from stacks.pipeline import registry as r
from stacks.pipeline import scale
from stacks.pipeline.asl import to_json
from stacks.pipeline.requests import DEBUGGER_RULES, RUN_TAG
from stacks.storage import MANIFEST_KEY
from tests.support.aws_requests import api_members, operation_of, step_functions_members, task_request_errors
from tests.support.cdk import REGION, Synthesized, synthesized

ACCOUNT = "123456789012"
BUCKET = "bincount-data-test"
TOPIC_NAME = "bincount-notifications"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"
SOURCE_URL = "s3://cdk-hnb659fds-assets-123456789012-us-east-1/0123abcd.gz"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/bincount-sagemaker"
SUBSTITUTIONS = {
    "DataBucket": BUCKET,
    "SageMakerRoleArn": SAGEMAKER_ROLE,
    "NotificationTopicArn": TOPIC_ARN,
    "TrainingSourceUrl": SOURCE_URL,
    "InferenceImage": (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/cdk-hnb659fds-container-assets-123456789012-us-east-1:"
        + "ab" * 32
    ),
    "DeployStateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:bincount-deploy",
}
ENDPOINT = "bincount-endpoint"
MODEL_DATA = f"s3://{BUCKET}/jobs/training/bincount-train-recorded/output/model.tar.gz"
FEATURES_DATA = f"s3://{BUCKET}/jobs/features/bincount-features-recorded/output/model.tar.gz"
TUNED = {"lr": "0.0031622776601683794", "eps": "4.2e-09", "weight-decay": "0.012"}
# What Tune sends as static hyperparameters with the defaults (the recorded Describe output echoes it).
STATIC = {
    "epochs": "4",
    "batch-size": "32",
    "sagemaker_program": "hpo.py",
    "sagemaker_submit_directory": SOURCE_URL,
    "sagemaker_region": REGION,
    "sagemaker_container_log_level": "20",
}
CONSOLE_SAMPLE_INPUT = {"Comment": "Insert your JSON here"}
IMAGES_PER_COUNT = 2
# Valid execution names (StartExecution allows all of these characters, up to 80 of them) that SageMaker's names and
# tag values would refuse if a request carried them.
AWKWARD_EXECUTION_NAMES: tuple[str, ...] = (
    "retrain(2)",
    "it's!",
    "nightly+run=2026.11.24@eu",
    "r" * 80,
    "Zählung-über_Nacht",
    "a(b)c!d'e" + "x" * 71,
)


# --- recorded Describe outputs of finished jobs ----------------------------------------------------------------


def tuning_describe() -> dict[str, Any]:
    """DescribeHyperParameterTuningJob of a completed tuning job, as the .sync integration returns it."""
    best = "bincount-hpo-recorded-003-5f1c2d3e"
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
    return {
        "HyperParameterTuningJobName": "bincount-hpo-recorded",
        "HyperParameterTuningJobArn": f"{arn}:hyper-parameter-tuning-job/bincount-hpo-recorded",
        "HyperParameterTuningJobStatus": "Completed",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": TUNING_OBJECTIVE},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2},
            "TrainingJobEarlyStoppingType": "Auto",
        },
        # SageMaker adds the objective to the static hyperparameters it reports.
        "TrainingJobDefinition": {"StaticHyperParameters": {**STATIC, "_tuning_objective_metric": TUNING_OBJECTIVE}},
        "TrainingJobStatusCounters": {
            "Completed": 4,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        },
        "ObjectiveStatusCounters": {"Succeeded": 4, "Pending": 0, "Failed": 0},
        "BestTrainingJob": {
            "TrainingJobName": best,
            "TrainingJobArn": f"{arn}:training-job/{best}",
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": TUNED,
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "Type": "Minimize",
                "MetricName": TUNING_OBJECTIVE,
                "Value": 1.3817,
            },
            "ObjectiveStatus": "Succeeded",
        },
    }


def features_describe() -> dict[str, Any]:
    """DescribeTrainingJob of a completed feature-extraction job: its model.tar.gz holds the cached features."""
    return {
        "TrainingJobName": "bincount-features-recorded",
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/bincount-features-recorded",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": FEATURES_DATA},
        "HyperParameters": {
            "batch-size": "32",
            "sagemaker_program": "extract_features.py",
            "sagemaker_submit_directory": SOURCE_URL,
        },
        "EnableManagedSpotTraining": True,
        "BillableTimeInSeconds": 412,
    }


def manifest_describe() -> dict[str, Any]:
    """DescribeTrainingJob of a completed BuildFullManifest job (dataset: full)."""
    return {
        "TrainingJobName": "bincount-manifest-recorded",
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/bincount-manifest-recorded",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "HyperParameters": {"sagemaker_program": "build_manifest.py", "bucket": BUCKET},
        "BillableTimeInSeconds": 2170,
    }


def training_describe(test_accuracy: float, rule_issues: tuple[str, ...] = ()) -> dict[str, Any]:
    """DescribeTrainingJob of a completed final job whose test accuracy was ``test_accuracy`` and whose in-process
    rules ``rule_issues`` found issues (their last ``rule:<Name>`` metric is 1, the others' 0)."""
    return {
        "TrainingJobName": "bincount-train-recorded",
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/bincount-train-recorded",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": MODEL_DATA},
        "HyperParameters": {**STATIC, **TUNED, "sagemaker_program": "train_model.py"},
        "FinalMetricDataList": [
            {"MetricName": "train:loss", "Value": 1.2512, "Timestamp": 1.7e9},
            {"MetricName": "valid:loss", "Value": 1.3817, "Timestamp": 1.7e9},
            {"MetricName": "valid:accuracy", "Value": 0.39, "Timestamp": 1.7e9},
            {"MetricName": TEST_ACCURACY, "Value": test_accuracy, "Timestamp": 1.7e9},
            {"MetricName": "test:rmse", "Value": 1.07, "Timestamp": 1.7e9},
            {"MetricName": IMAGES_PER_SECOND, "Value": 1.0, "Timestamp": 1.7e9},
            *(
                {"MetricName": f"rule:{rule}", "Value": 1.0 if rule in rule_issues else 0.0, "Timestamp": 1.7e9}
                for rule in RULE_NAMES
            ),
        ],
        "EnableManagedSpotTraining": True,
        "BillableTimeInSeconds": 1203,
    }


# --- the definition moto runs --------------------------------------------------------------------------------


def deployed_definition(synth: Synthesized) -> dict[str, Any]:
    """The template's definition with the DefinitionSubstitutions filled in with this module's test values."""
    properties = synth.state_machine()["Properties"]
    assert set(properties["DefinitionSubstitutions"]) == set(SUBSTITUTIONS)
    text = properties["DefinitionString"]
    for key, value in SUBSTITUTIONS.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text
    return json.loads(text)


def failure_tail(synth: Synthesized, error: dict[str, str]) -> str:
    """Just the deployed failure handling (NotifyFailure onwards), entered with ``error`` as a Catch records it."""
    states = deployed_definition(synth)["States"]
    tail = {name: states[name] for name in (d.NOTIFY_FAILURE, d.CHECK_ERROR_NAME, d.FAILED, d.STEP_FAILED)}
    inject = {"Type": "Pass", "Result": error, "ResultPath": "$.error", "Next": d.NOTIFY_FAILURE}
    return to_json({"StartAt": "Inject", "States": {"Inject": inject, **tail}})


def moto_definition(synth: Synthesized, *, test_accuracy: float, rule_issues: tuple[str, ...] = ()) -> str:
    """The deployed definition with each .sync task split into its submit request + a recorded result."""
    asl = deployed_definition(synth)
    recorded = {
        d.EXTRACT_FEATURES: features_describe(),
        d.TUNE: tuning_describe(),
        d.TRAIN: training_describe(test_accuracy, rule_issues),
        scale.EXTRACT_FEATURES_SHARDED: features_describe(),
        scale.BUILD_FULL_MANIFEST: manifest_describe(),
    }
    sync_states = [name for name, state in asl["States"].items() if state.get("Resource", "").endswith(".sync")]
    assert sorted(sync_states) == sorted(recorded)
    for name in sync_states:
        state = asl["States"][name]
        asl["States"][f"{name}Completed"] = {
            "Type": "Pass",
            "Result": recorded[name],
            "ResultPath": state["ResultPath"],
            "Next": state["Next"],
        }
        asl["States"][name] = {
            **state,
            "Resource": state["Resource"].removesuffix(".sync"),
            "ResultPath": None,
            "Next": f"{name}Completed",
        }
    return to_json(asl)


# --- moto: missing UpdateEndpoint and endpoint status progression ---------------------------------------------


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    """UpdateEndpoint, which moto lacks: switch to the new config (which must exist) and start Updating."""
    backend = self.sagemaker_backend
    endpoint = backend.endpoints[self._get_param("EndpointName")]
    config = self._get_param("EndpointConfigName")
    backend.describe_endpoint_config(config)
    endpoint.previous_config_name = endpoint.endpoint_config_name
    endpoint.endpoint_config_name = config
    endpoint.endpoint_status = "Updating"
    return ActionResult({"EndpointArn": endpoint.arn})


@dataclass
class EndpointBehaviour:
    """How endpoints behave in a scenario: Creating/Updating for one poll (or not at all), then ``final_status``."""

    final_status: str = "InService"
    transitional: bool = True
    update_rolls_back: bool = False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(SageMakerResponse, "update_endpoint", _update_endpoint, raising=False)
        original_create = SageMakerModelBackend.create_endpoint
        original_describe = SageMakerModelBackend.describe_endpoint
        final_status = self.final_status
        transitional = self.transitional
        rolls_back = self.update_rolls_back

        def create_endpoint(backend: SageMakerModelBackend, *args: Any, **kwargs: Any) -> FakeEndpoint:
            endpoint = original_create(backend, *args, **kwargs)
            endpoint.endpoint_status = "Creating" if transitional else final_status
            return endpoint

        def describe_endpoint(backend: SageMakerModelBackend, endpoint_name: str) -> dict[str, Any]:
            response = original_describe(backend, endpoint_name)
            endpoint = backend.endpoints[endpoint_name]
            if endpoint.endpoint_status == "Updating" and rolls_back:  # back on the old config, still serving
                endpoint.endpoint_config_name = endpoint.previous_config_name
            if endpoint.endpoint_status in ("Creating", "Updating"):  # done by the next poll
                endpoint.endpoint_status = final_status
                if final_status == "Failed":
                    endpoint.failure_reason = (
                        "The primary container for production variant AllTraffic did not pass the ping health check."
                    )
            return response

        monkeypatch.setattr(SageMakerModelBackend, "create_endpoint", create_endpoint)
        monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", describe_endpoint)


# --- what the Task states send --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRequest:
    """One request a Task state sent: its resource and its Parameters, rendered with the execution's data."""

    state: str
    resource: str
    parameters: dict[str, Any]

    def errors(self) -> list[str]:
        """What AWS would refuse in this request (botocore's model of the API the resource calls)."""
        return [f"{self.state} {error}" for error in task_request_errors(self.resource, self.parameters)]


def record_requests(monkeypatch: pytest.MonkeyPatch) -> list[TaskRequest]:
    """Record every request moto's interpreter sends for a Task state, as the state rendered it."""
    sent: list[TaskRequest] = []
    original = StateTaskService._before_eval_execution

    def before_eval_execution(task: StateTaskService, **kwargs: Any) -> None:
        parameters = json.loads(json.dumps(kwargs["raw_parameters"]))
        sent.append(TaskRequest(str(task.name), task.resource.resource_arn, parameters))
        original(task, **kwargs)

    monkeypatch.setattr(StateTaskService, "_before_eval_execution", before_eval_execution)
    return sent


def install_step_functions_shims(monkeypatch: pytest.MonkeyPatch) -> None:
    """What moto's Step Functions does differently from AWS's (see the module's docstring)."""

    def normalise_parameters(task: StateTaskServiceAwsSdk, parameters: dict[str, Any], *args: Any) -> None:
        service, operation = operation_of(task.resource.resource_arn)
        renamed = api_members(service, operation, parameters)
        parameters.clear()
        parameters.update(renamed)

    def normalise_response(task: StateTaskServiceAwsSdk, response: Any, *args: Any) -> None:
        if isinstance(response, dict):
            renamed = step_functions_members(*operation_of(task.resource.resource_arn), response)
            response.clear()
            response.update(renamed)

    def deepcopy_state_machine(machine: StateMachine, memo: dict[int, Any]) -> StateMachine:
        clone = copy.copy(machine)  # shares the backend and the earlier executions, copies the rest
        for key, value in vars(machine).items():
            if key not in ("backend", "executions"):
                setattr(clone, key, copy.deepcopy(value, memo))
        clone.executions = []
        return clone

    monkeypatch.setitem(aws_sdk_service._SERVICE_ERROR_NAMES, "s3", "S3")  # S3.NoSuchKeyException, as AWS names it
    monkeypatch.setattr(StateTaskServiceAwsSdk, "_normalise_parameters", normalise_parameters, raising=False)
    monkeypatch.setattr(StateTaskServiceAwsSdk, "_normalise_response", normalise_response, raising=False)
    monkeypatch.setattr(StateMachine, "__deepcopy__", deepcopy_state_machine, raising=False)


# --- running an execution ------------------------------------------------------------------------------------


@dataclass
class Run:
    """A finished execution and what it left in moto."""

    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    states: list[str]  # states entered, in order
    notifications: list[dict[str, Any]]
    copied: dict[str, bytes]
    requests: list[TaskRequest]  # what every Task state sent, in order, Distributed Map items included

    def entered(self, state: str) -> bool:
        return state in self.states


@dataclass
class Pipeline:
    """moto with the pipeline deployed: the data bucket (manifest), the public bucket (images), the topic."""

    sfn: Any
    s3: Any
    sns: Any
    sagemaker: Any
    arn: str
    manifest: list[dict[str, Any]]
    queue_url: str
    sent: list[TaskRequest]

    def run(self, execution_input: dict[str, Any] | str, timeout: float = 60, *, name: str | None = None) -> Run:
        """Start an execution (named ``name``, else the next awkward name) and wait for it to end; every request it
        sent must be valid for AWS."""
        text = execution_input if isinstance(execution_input, str) else json.dumps(execution_input)
        name = name or next(_EXECUTION_NAMES)
        first_request = len(self.sent)
        arn = self.sfn.start_execution(stateMachineArn=self.arn, name=name, input=text)["executionArn"]
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        states = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
        output = described.get("output")
        sent = self.sent[first_request:]
        invalid = [error for request in sent for error in request.errors()]
        assert not invalid, f"execution {name!r} sent requests AWS would refuse:\n" + "\n".join(invalid)
        return Run(
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            states=states,
            notifications=self._notifications(),
            copied=self._dataset_objects(),
            requests=sent,
        )

    def _notifications(self) -> list[dict[str, Any]]:
        messages = self.sns_messages()
        return [{"Subject": m.get("Subject"), "Message": json.loads(m["Message"])} for m in messages]

    def sns_messages(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            found += [json.loads(m["Body"]) for m in batch]
            for m in batch:
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def _dataset_objects(self) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {
            o["Key"]: self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in listed
            if o["Key"].split("/")[0] in ("train", "valid", "test")
        }

    def model_packages(self) -> list[dict[str, Any]]:
        """The versions of the model package group, oldest first, described."""
        summaries = self.sagemaker.list_model_packages(ModelPackageGroupName="bincount-models", SortOrder="Ascending")
        return [
            self.sagemaker.describe_model_package(ModelPackageName=m["ModelPackageArn"])
            for m in summaries["ModelPackageSummaryList"]
        ]

    def training_jobs(self) -> dict[str, dict[str, Any]]:
        """The training jobs the execution created (moto's record of each request), by kind: features, train."""
        jobs: dict[str, dict[str, Any]] = {}
        for summary in self.sagemaker.list_training_jobs()["TrainingJobSummaries"]:
            kind = summary["TrainingJobName"].split("-")[1]
            assert kind not in jobs, f"two {kind} jobs"
            jobs[kind] = self.sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        return jobs

    def training_request(self) -> dict[str, Any]:
        """The final training job's request."""
        return self.training_jobs()["train"]

    def tuning_request(self) -> dict[str, Any]:
        (summary,) = self.sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
        return self.sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=summary["HyperParameterTuningJobName"]
        )


_EXECUTION_NAMES = itertools.cycle(AWKWARD_EXECUTION_NAMES)


def channels(request: dict[str, Any]) -> dict[str, str]:
    """A job request's channels: name -> S3 URI."""
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}


def small_manifest(images_per_count: int = IMAGES_PER_COUNT) -> list[dict[str, Any]]:
    """A stratified slice of the real manifest: ``images_per_count`` images of each count, every field as deployed."""
    return [e.to_json() for e in build_manifest(load_file_list(), max_per_class=images_per_count)]


@pytest.fixture
def deploy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory that sets up moto and returns the deployed Pipeline.

    ``test_accuracy`` is the recorded final job's and ``rule_issues`` the rules that found issues in it; ``endpoint``
    how endpoints behave; ``inject_error`` deploys only the failure handling, entered with that error; ``context``
    overrides cdk.json's settings at synth; ``images_per_count`` sizes the manifest.
    """
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):

        def factory(
            *,
            test_accuracy: float = 0.41,
            rule_issues: tuple[str, ...] = (),
            endpoint: EndpointBehaviour | None = None,
            inject_error: dict[str, str] | None = None,
            context: dict[str, Any] | None = None,
            images_per_count: int = IMAGES_PER_COUNT,
        ) -> Pipeline:
            synth = synthesized(**(context or {}))
            (endpoint or EndpointBehaviour()).install(monkeypatch)
            from tests.functional.stacks.test_deployment import create_lifecycle

            sent = record_requests(monkeypatch)
            install_step_functions_shims(monkeypatch)
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket=BUCKET)
            s3.create_bucket(Bucket=SOURCE_BUCKET)
            manifest = small_manifest(images_per_count)
            for entry in manifest:
                s3.put_object(Bucket=SOURCE_BUCKET, Key=entry["source_key"], Body=f"jpeg {entry['id']}".encode())
            s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(manifest).encode())
            sns = boto3.client("sns", region_name=REGION)
            assert sns.create_topic(Name=TOPIC_NAME)["TopicArn"] == TOPIC_ARN
            sqs = boto3.client("sqs", region_name=REGION)
            queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=queue_arn)
            create_lifecycle(synth, monkeypatch)
            sfn = boto3.client("stepfunctions", region_name=REGION)
            arn = sfn.create_state_machine(
                name="bincount-pipeline",
                definition=(
                    failure_tail(synth, inject_error)
                    if inject_error
                    else moto_definition(synth, test_accuracy=test_accuracy, rule_issues=rule_issues)
                ),
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/bincount-pipeline",
            )["stateMachineArn"]
            return Pipeline(
                sfn=sfn,
                s3=s3,
                sns=sns,
                sagemaker=boto3.client("sagemaker", region_name=REGION),
                arn=arn,
                manifest=manifest,
                queue_url=queue_url,
                sent=sent,
            )

        yield factory


def existing_endpoint(sagemaker: Any) -> None:
    """An endpoint a previous execution deployed (model, config, endpoint InService)."""
    sagemaker.create_model(
        ModelName="bincount-model-previous",
        ExecutionRoleArn=SAGEMAKER_ROLE,
        PrimaryContainer={"Image": "image", "ModelDataUrl": "s3://old/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="bincount-config-previous",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "bincount-model-previous",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.t2.medium",
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="bincount-config-previous")
    sagemaker.describe_endpoint(EndpointName=ENDPOINT)  # Creating -> InService


FAST_POLLING = {"endpointPollSeconds": 0}


# --- scenarios -----------------------------------------------------------------------------------------------


def test_happy_path_copies_the_dataset_tunes_trains_and_creates_the_endpoint(deploy: Any) -> None:
    pipeline = deploy()
    skipped = pipeline.manifest[0]["dest_key"]
    pipeline.s3.put_object(Bucket=BUCKET, Key=skipped, Body=b"copied by an earlier run")

    run = pipeline.run(FAST_POLLING)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    # PrepareDataset: every image in the channel layout, the one already there left alone.
    assert set(run.copied) == {e["dest_key"] for e in pipeline.manifest}
    assert run.copied[skipped] == b"copied by an earlier run"
    assert all(run.copied[e["dest_key"]] == f"jpeg {e['id']}".encode() for e in pipeline.manifest[1:])
    # ExtractFeatures ran the backbone once over the train and valid photos on the training instance type...
    jobs = pipeline.training_jobs()
    assert set(jobs) == {"features", "train"}
    features = jobs["features"]
    assert features["HyperParameters"]["sagemaker_program"] == "extract_features.py"
    assert channels(features) == {"train": f"s3://{BUCKET}/train/", "valid": f"s3://{BUCKET}/valid/"}
    assert features["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    # ... and the trials read only its artifact, on a small CPU instance; the final job that and the test photos.
    assert run.states.index(d.EXTRACT_FEATURES) < run.states.index(d.TUNE)
    assert not run.entered(d.USE_PHOTO_CHANNELS)
    tuning = pipeline.tuning_request()
    assert channels(tuning["TrainingJobDefinition"]) == {"features": FEATURES_DATA}
    assert tuning["TrainingJobDefinition"]["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert channels(jobs["train"]) == {"features": FEATURES_DATA, "test": f"s3://{BUCKET}/test/"}
    assert features["TrainingJobName"].removeprefix("bincount-features-") == tuning[
        "HyperParameterTuningJobName"
    ].removeprefix("bincount-hpo-")
    # Tune got the static hyperparameters the recorded Describe echoes, and unique <= 32-character names.
    assert tuning["TrainingJobDefinition"]["StaticHyperParameters"] == STATIC
    assert len(tuning["HyperParameterTuningJobName"]) <= 32
    assert tuning["HyperParameterTuningJobName"].startswith("bincount-hpo-")
    # Train got our static + the tuned hyperparameters, with the final job's entry point; not the objective that
    # SageMaker adds to the tuning job's static hyperparameters (the recorded Describe output has it).
    training = pipeline.training_request()
    assert training["HyperParameters"] == {**STATIC, **TUNED, "sagemaker_program": "train_model.py"}
    assert training["TrainingJobName"].removeprefix("bincount-train-") == tuning[
        "HyperParameterTuningJobName"
    ].removeprefix("bincount-hpo-")
    # Register: the model, approved by the gate (approval auto), with its image, artifact, serving environment and
    # metrics; the metadata name the jobs and the data manifest.
    (package,) = pipeline.model_packages()
    assert package["ModelApprovalStatus"] == "Approved"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == MODEL_DATA
    assert container["Image"] == SUBSTITUTIONS["InferenceImage"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "endpoint_inference.py"
    assert package["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] == ["ml.t2.medium"]
    archive = f"s3://{BUCKET}/jobs/training/{training['TrainingJobName']}/output/output.tar.gz"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == archive
    assert package["CustomerMetadataProperties"] == {
        "approval": "auto",
        "testAccuracy": "0.41",
        "accuracyFloor": "0.3",
        "trainingJobName": training["TrainingJobName"],
        "tuningJobName": tuning["HyperParameterTuningJobName"],
        "dataManifest": f"s3://{BUCKET}/manifests/manifest.json",
        "trainingReport": archive,
    }
    assert (
        package["ApprovalDescription"]
        == "Quality gate passed: test accuracy 0.41 >= accuracy floor 0.3 (approval auto)."
    )
    # Deploy (the deployment state machine, waited for): a model from the package, a config on ml.t2.medium, a new
    # endpoint on it.
    assert run.states.index(r.REGISTER_MODEL) < run.states.index(r.START_DEPLOYMENT)
    (model,) = pipeline.sagemaker.list_models()["Models"]
    described_model = pipeline.sagemaker.describe_model(ModelName=model["ModelName"])
    assert described_model["PrimaryContainer"] == {"ModelPackageName": package["ModelPackageArn"]}
    endpoint = pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    config = pipeline.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["ProductionVariants"][0]["ModelName"] == model["ModelName"]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.t2.medium"
    # Notify: one success message (the deployment leaves it to the pipeline), the output the same summary.
    assert [n["Subject"] for n in run.notifications] == ["bincount: new model deployed"]
    summary = run.notifications[0]["Message"]
    assert summary == run.output
    assert summary["status"] == "DEPLOYED" and summary["approval"] == "auto"
    assert summary["modelPackageArn"] == package["ModelPackageArn"]
    assert summary["testAccuracy"] == 0.41
    assert summary["hyperParameters"] == TUNED
    assert summary["featureCache"] is True
    deployment = summary["outcome"]["deployment"]
    assert deployment["modelName"] == model["ModelName"] and deployment["endpointUpdated"] is False
    assert deployment["modelPackageVersion"] == 1
    # The training rules found nothing; the report is in the final job's output archive.
    assert summary["trainingIssues"] == []
    assert summary["trainingReport"] == {
        "archive": f"s3://{BUCKET}/jobs/training/{training['TrainingJobName']}/output/output.tar.gz",
        "files": ["report.html", "diagnostics.json"],
    }
    # SageMaker Debugger is off by default: no hook, no rules, the Profiler explicitly disabled.
    assert training.get("DebugHookConfig") is None and not training.get("DebugRuleConfigurations")
    train_request = deployed_definition(synthesized())["States"][d.TRAIN]["Parameters"]
    assert train_request["ProfilerConfig"] == {"DisableProfiler": True}
    assert not {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"} & set(train_request)


def task_states(states: dict[str, Any]) -> set[str]:
    """The Task states of a definition, those of map item processors included."""
    found = set()
    for name, state in states.items():
        if state["Type"] == "Task":
            found.add(name)
        if "ItemProcessor" in state:
            found |= task_states(state["ItemProcessor"]["States"])
    return found


def test_every_task_state_sends_requests_aws_accepts_whatever_the_execution_is_called(deploy: Any) -> None:
    pipeline = deploy()

    created = pipeline.run(FAST_POLLING, name="retrain(2)")
    updated = pipeline.run(FAST_POLLING, name="it's!")
    rejected = pipeline.run({**FAST_POLLING, "accuracyFloor": 0.99}, name="n" * 80)

    # Each run() has checked every request it sent against botocore's model of the API; together these three
    # executions sent one from every Task state of the definition.
    assert (created.status, updated.status, rejected.status) == ("SUCCEEDED", "SUCCEEDED", "FAILED")
    runs = (created, updated, rejected)
    # (The deployments they waited for sent theirs, checked the same way.)
    synth = synthesized()
    # (The scale-out states, entered only with dataset: full or several instances: test_scale.py.)
    training = task_states(deployed_definition(synth)["States"]) - set(scale.TASK_STATES)
    deployment = task_states(json.loads(synth.state_machine("Lifecycle")["Properties"]["DefinitionString"])["States"])
    sent = {r.state for run in runs for r in run.requests}
    assert training <= sent <= training | deployment
    assert {dp.CREATE_MODEL, dp.CREATE_ENDPOINT_CONFIG, dp.CREATE_ENDPOINT, dp.UPDATE_ENDPOINT} <= sent
    # Whatever the execution is called, what it creates is tagged with its run id, which also names them; the
    # deployment (named after it) tags what it creates with its own.
    run_id = created.output["runId"]
    tagged = [r for r in created.requests if "Tags" in r.parameters]
    assert {r.state for r in tagged} == {
        d.EXTRACT_FEATURES,
        d.TUNE,
        d.TRAIN,
        r.REGISTER_MODEL,
        dp.CREATE_MODEL,
        dp.CREATE_ENDPOINT_CONFIG,
        dp.CREATE_ENDPOINT,
    }
    deployed = created.output["outcome"]["deployment"]
    assert created.output["outcome"]["deploymentExecution"].endswith(f":bincount-deploy-{run_id}")
    deployment_id = deployed["modelName"].removeprefix("bincount-model-")
    for request in tagged:
        own = deployment_id if request.state in deployment else run_id
        assert request.parameters["Tags"] == [{"Key": RUN_TAG, "Value": own}], request.state
    assert created.output["execution"].endswith(":retrain(2)")
    # The tuning objective is a metric the trials report; only the final job may name Debugger collections or rules.
    (tune,) = [r.parameters for r in created.requests if r.state == d.TUNE]
    reported = [m["Name"] for m in tune["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]]
    assert tune["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] in reported
    debugger = {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerConfig", "ProfilerRuleConfigurations"}
    assert not any(debugger & set(r.parameters) for run in runs for r in run.requests if r.state != d.TRAIN)


def test_a_photo_gone_from_the_public_bucket_is_skipped_and_counted(deploy: Any) -> None:
    # 100 photos: one not copied is the 1% PrepareDataset tolerates. (moto counts failed items but never fails a
    # Distributed Map for them; that the threshold's error ends the pipeline is test_failure_tail_... below.)
    pipeline = deploy(images_per_count=20)
    gone = pipeline.manifest[7]
    pipeline.s3.delete_object(Bucket=SOURCE_BUCKET, Key=gone["source_key"])

    run = pipeline.run(FAST_POLLING)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert set(run.copied) == {e["dest_key"] for e in pipeline.manifest} - {gone["dest_key"]}
    # Skipped at once: one CopyImage request per photo, no retries for the missing one.
    assert sum(r.state == d.COPY_IMAGE for r in run.requests) == len(pipeline.manifest)
    assert run.output["imagesNotCopied"] == 1
    assert run.output["datasetResults"].startswith(f"s3://{BUCKET}/map-runs/")
    assert run.notifications[0]["Message"]["imagesNotCopied"] == 1


def test_without_the_feature_cache_every_job_reads_the_photos(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({**FAST_POLLING, "featureCache": False, "tuningInstanceType": "ml.m5.2xlarge"})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert not run.entered(d.EXTRACT_FEATURES) and not run.entered(d.USE_CACHED_FEATURES)
    assert run.entered(d.USE_PHOTO_CHANNELS)
    jobs = pipeline.training_jobs()
    assert set(jobs) == {"train"}
    photos = {name: f"s3://{BUCKET}/{name}/" for name in ("train", "valid", "test")}
    tuning = pipeline.tuning_request()["TrainingJobDefinition"]
    assert channels(tuning) == {k: photos[k] for k in ("train", "valid")}
    assert tuning["ResourceConfig"]["InstanceType"] == "ml.m5.2xlarge"
    assert channels(jobs["train"]) == photos
    assert run.output["featureCache"] is False


def test_existing_endpoint_is_updated_blue_green(deploy: Any) -> None:
    pipeline = deploy()
    existing_endpoint(pipeline.sagemaker)

    run = pipeline.run(FAST_POLLING)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    deployment = run.output["outcome"]["deployment"]
    endpoint = pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == deployment["endpointConfigName"] != "bincount-config-previous"
    assert deployment["endpointUpdated"] is True


@pytest.mark.parametrize("console_input", [{}, CONSOLE_SAMPLE_INPUT], ids=["empty", "console-sample"])
def test_console_inputs_run_with_defaults(deploy: Any, console_input: dict[str, Any]) -> None:
    # With the default 60 s between polls, let the endpoint be InService at once.
    pipeline = deploy(endpoint=EndpointBehaviour(transitional=False))

    run = pipeline.run(console_input)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    tuning = pipeline.tuning_request()
    assert tuning["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 4,
        "MaxParallelTrainingJobs": 2,
    }
    ranges = {
        r["Name"]: r for r in tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"]
    }
    assert {name: (float(r["MinValue"]), float(r["MaxValue"]), r["ScalingType"]) for name, r in ranges.items()} == {
        "lr": (1e-5, 1e-1, "Logarithmic"),
        "eps": (1e-9, 1e-8, "Linear"),
        "weight-decay": (1e-3, 1e-1, "Linear"),
    }
    # The very ranges the local twin searches.
    from bincount.training.tuning import DEFAULT_RANGES

    assert {n: (float(r["MinValue"]), float(r["MaxValue"]), r["ScalingType"]) for n, r in ranges.items()} == {
        r.name: (r.min_value, r.max_value, r.scaling) for r in DEFAULT_RANGES
    }
    training = pipeline.training_request()
    assert training["EnableManagedSpotTraining"] is True
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert training["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"


def test_quality_gate_failure_stops_before_deploying(deploy: Any) -> None:
    pipeline = deploy(test_accuracy=0.2)
    existing_endpoint(pipeline.sagemaker)

    run = pipeline.run({})

    assert run.status == "FAILED"
    assert run.error == d.GATE_ERROR
    assert "Test accuracy 0.2" in run.cause and "below the accuracy floor 0.3" in run.cause
    # Registered all the same, rejected, the cause as the approval's description; nothing deployed.
    (package,) = pipeline.model_packages()
    assert package["ModelApprovalStatus"] == "Rejected" and package["ApprovalDescription"] == run.cause
    assert package["CustomerMetadataProperties"]["testAccuracy"] == "0.2"
    assert not run.entered(r.START_DEPLOYMENT)
    assert [m["ModelName"] for m in pipeline.sagemaker.list_models()["Models"]] == ["bincount-model-previous"]
    assert (
        pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "bincount-config-previous"
    )
    assert run.states[-3:] == [d.NOTIFY_FAILURE, d.CHECK_ERROR_NAME, d.FAILED]
    (notice,) = run.notifications
    assert notice["Subject"] == "bincount: pipeline failed"
    assert notice["Message"]["error"] == d.GATE_ERROR and notice["Message"]["cause"] == run.cause


def test_settings_in_the_input_override_the_defaults(deploy: Any) -> None:
    pipeline = deploy(test_accuracy=0.41)

    run = pipeline.run(
        {
            "useSpot": False,
            "tuningMaxJobs": 6,
            "tuningMaxParallelJobs": 3,
            "epochs": 2,
            "trainingInstanceType": "ml.g4dn.xlarge",
            "accuracyFloor": 0.5,
        }
    )

    tuning = pipeline.tuning_request()
    assert tuning["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 6,
        "MaxParallelTrainingJobs": 3,
    }
    assert tuning["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] == "2"
    assert tuning["TrainingJobDefinition"]["EnableManagedSpotTraining"] is False
    training = pipeline.training_request()
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert training["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"
    # 0.41 passes the default floor but not the overridden one.
    assert run.status == "FAILED" and run.error == d.GATE_ERROR
    assert "below the accuracy floor 0.5" in run.cause


def test_failed_endpoint_ends_in_fail_after_notifying(deploy: Any) -> None:
    pipeline = deploy(endpoint=EndpointBehaviour(final_status="Failed"))

    run = pipeline.run(FAST_POLLING)

    assert run.status == "FAILED"
    assert run.error == r.DEPLOYMENT_FAILED_ERROR
    assert "its deployment arn:aws:states:" in run.cause and ":execution:bincount-deploy:bincount-deploy-" in run.cause
    assert f"EndpointFailed: Endpoint {ENDPOINT} failed" in run.cause and "ping health check" in run.cause
    assert run.states[-4:] == [r.DEPLOYMENT_FAILED, d.NOTIFY_FAILURE, d.CHECK_ERROR_NAME, d.FAILED]
    (notice,) = run.notifications
    assert notice["Message"]["error"] == r.DEPLOYMENT_FAILED_ERROR
    assert notice["Message"]["cause"] == run.cause


def test_invalid_input_fails_with_the_settings_used(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({"epochs": "four", "lrMin": 0.5})

    assert run.status == "FAILED" and run.error == d.INVALID_SETTINGS_ERROR
    assert '"epochs":"four"' in run.cause.replace(" ", "")
    assert not run.entered(d.PREPARE_DATASET)
    assert run.notifications[0]["Message"]["error"] == d.INVALID_SETTINGS_ERROR


def test_failed_update_is_rolled_back_and_reported(deploy: Any) -> None:
    pipeline = deploy(endpoint=EndpointBehaviour(update_rolls_back=True))
    existing_endpoint(pipeline.sagemaker)

    run = pipeline.run(FAST_POLLING)

    assert run.status == "FAILED" and run.error == r.DEPLOYMENT_FAILED_ERROR
    assert "EndpointUpdateRolledBack: " in run.cause
    assert "endpoint config bincount-config-previous (the previous model) keeps serving" in run.cause
    assert pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"
    (notice,) = run.notifications  # the pipeline's only: the deployment it waited for leaves notifying to it
    assert notice["Message"]["error"] == r.DEPLOYMENT_FAILED_ERROR


@pytest.mark.parametrize(
    ("error", "expected_error", "expected_cause"),
    [
        ("States.TaskFailed", d.STEP_FAILED_ERROR, "States.TaskFailed: the job failed"),
        ("SageMaker.AmazonSageMakerException", "SageMaker.AmazonSageMakerException", "the job failed"),
        # PrepareDataset when more photos than tolerated could not be copied.
        (
            "States.ExceedToleratedFailureThreshold",
            d.STEP_FAILED_ERROR,
            "States.ExceedToleratedFailureThreshold: the job failed",
        ),
    ],
)
def test_failure_tail_keeps_the_error_and_never_raises_a_reserved_name(
    deploy: Any, error: str, expected_error: str, expected_cause: str
) -> None:
    # A Fail state may not raise States.* names; errors caught from AWS often are (States.TaskFailed ...).
    pipeline = deploy(inject_error={"Error": error, "Cause": "the job failed"})

    run = pipeline.run({})

    assert run.status == "FAILED"
    assert (run.error, run.cause) == (expected_error, expected_cause)
    assert run.notifications[0]["Message"]["error"] == error


def test_notification_lists_the_rules_that_found_issues(deploy: Any) -> None:
    pipeline = deploy(rule_issues=("Overfit", "ClassImbalance"))

    run = pipeline.run(FAST_POLLING)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    (notice,) = run.notifications
    assert notice["Subject"] == "bincount: new model deployed"
    assert notice["Message"]["trainingIssues"] == ["Overfit", "ClassImbalance"]  # in the order the job reported them
    assert notice["Message"]["trainingReport"]["archive"].endswith("/output/output.tar.gz")
    assert run.entered(r.START_DEPLOYMENT)


def test_stop_on_training_issues_refuses_the_model_naming_the_rules(deploy: Any) -> None:
    pipeline = deploy(rule_issues=("LossNotDecreasing",))
    existing_endpoint(pipeline.sagemaker)

    run = pipeline.run({**FAST_POLLING, "stopOnTrainingIssues": True})

    assert run.status == "FAILED" and run.error == d.TRAINING_ISSUES_ERROR, (run.error, run.cause)
    assert '["LossNotDecreasing"]' in run.cause and "stopOnTrainingIssues" in run.cause
    assert f"s3://{BUCKET}/jobs/training/" in run.cause and "report.html" in run.cause
    assert not run.entered(r.START_DEPLOYMENT)
    (package,) = pipeline.model_packages()
    assert package["ModelApprovalStatus"] == "Rejected" and package["ApprovalDescription"] == run.cause
    assert [m["ModelName"] for m in pipeline.sagemaker.list_models()["Models"]] == ["bincount-model-previous"]
    (notice,) = run.notifications
    assert notice["Subject"] == "bincount: pipeline failed"
    assert notice["Message"]["error"] == d.TRAINING_ISSUES_ERROR and notice["Message"]["cause"] == run.cause


def test_stop_on_training_issues_passes_a_clean_training(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({**FAST_POLLING, "stopOnTrainingIssues": True})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.output["trainingIssues"] == []


def test_stop_on_training_issues_must_be_a_boolean(deploy: Any) -> None:
    run = deploy().run({"stopOnTrainingIssues": "yes"})

    assert run.status == "FAILED" and run.error == d.INVALID_SETTINGS_ERROR


DEBUGGER_CONTEXT = {"sagemakerDebugger": True, "frameworkVersion": "2.1", "pyVersion": "py310"}


def test_sagemaker_debugger_setting_adds_the_hook_rules_and_profiler(deploy: Any) -> None:
    pipeline = deploy(context=DEBUGGER_CONTEXT)

    run = pipeline.run(FAST_POLLING)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    training = pipeline.training_request()
    hook = training["DebugHookConfig"]
    assert hook["S3OutputPath"] == f"s3://{BUCKET}/jobs/debugger/"
    collections = {c["CollectionName"] for c in hook["CollectionConfigurations"]}
    assert collections == {"losses", "weights", "gradients", "biases", "relu_input"}
    rules = {r["RuleConfigurationName"]: r for r in training["DebugRuleConfigurations"]}
    assert set(rules) == set(DEBUGGER_RULES)
    assert all(".dkr.ecr." in r["RuleEvaluatorImage"] for r in rules.values())
    request = deployed_definition(synthesized(**DEBUGGER_CONTEXT))["States"][d.TRAIN]["Parameters"]
    assert request["ProfilerConfig"]["S3OutputPath"] == f"s3://{BUCKET}/jobs/profiler/"
    assert [r["RuleConfigurationName"] for r in request["ProfilerRuleConfigurations"]] == ["ProfilerReport"]


def test_manual_approval_registers_the_model_pending_and_deploys_nothing(deploy: Any) -> None:
    pipeline = deploy()
    existing_endpoint(pipeline.sagemaker)

    run = pipeline.run({**FAST_POLLING, "approval": "manual"})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    (package,) = pipeline.model_packages()
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"]["approval"] == "manual"  # what the ApprovedByPerson rule matches
    assert not run.entered(r.RECORD_APPROVAL) and not run.entered(r.START_DEPLOYMENT)
    assert pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == (
        "bincount-config-previous"
    )
    (notice,) = run.notifications
    assert notice["Subject"] == "bincount: model registered, waiting for approval"
    assert run.output["status"] == "PENDING_MANUAL_APPROVAL"
    assert package["ModelPackageArn"] in run.output["outcome"]["approveCommand"]


@pytest.mark.parametrize("bad", [{"approval": "yes"}, {"minInstances": 3, "maxInstances": 2}, {"maxInstances": "2"}])
def test_lifecycle_settings_are_validated(deploy: Any, bad: dict[str, Any]) -> None:
    run = deploy().run(bad)

    assert run.status == "FAILED" and run.error == d.INVALID_SETTINGS_ERROR
    assert not run.entered(d.PREPARE_DATASET)


def test_deployment_settings_of_the_input_reach_the_deployment(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({**FAST_POLLING, "minInstances": 2, "maxInstances": 3, "dataCapturePercent": 10})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    deployment = run.output["outcome"]["deployment"]
    assert (deployment["minInstances"], deployment["maxInstances"], deployment["dataCapturePercent"]) == (2, 3, 10)
    config = pipeline.sagemaker.describe_endpoint_config(EndpointConfigName=deployment["endpointConfigName"])
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 2
