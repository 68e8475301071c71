"""The Batch state machine (docs/design.md §11), synthesized and executed in moto from the execution input to the
summary.

What moto cannot do is faked at the boundary, with the real code behind it:

- the Batch Transform job: CreateTransformJob (the state's real request, validated by botocore's client) is recorded by
  moto, and then each photo under the input prefix goes through the real inference handler (``input_fn ->
  predict_fn -> output_fn`` on the trained artifact) into ``<output>/<key>.out``, as SageMaker would; a photo the
  handler refuses fails the job, as a 4xx fails a real transform job;
- the Lambda: moto cannot run it without Docker, so its invocation runs the handler from the synthesized asset
  in-process (against moto's S3). The asset holds exactly the handler and ``bincount/serving/reconcile.py``.

The Wait between DescribeTransformJob polls is cut to 0 s; everything else runs as deployed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaFunction
from moto.sagemaker.models import SageMakerModelBackend

from bincount.data.sample import SAMPLE_DIR
from bincount.serving.reconcile import COLUMNS, read_counts_csv, summarize
from stacks.batch import definition as b
from stacks.batch.construct import lambda_members
from stacks.pipeline.asl import to_json
from tests.functional.stacks.test_state_machine import (
    TaskRequest,
    install_step_functions_shims,
    record_requests,
    task_states,
)
from tests.support.cdk import REGION, Synthesized, synthesized
from tests.support.serving import PHOTOS

ACCOUNT = "123456789012"
BUCKET = "bincount-data-test"
OTHER_BUCKET = "someone-elses-photos"
TOPIC_NAME = "bincount-notifications"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"
FUNCTION = "bincount-reconcile"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
ENDPOINT = "bincount-endpoint"
MODEL = "bincount-model-0123456789ab"
LABELS: dict[str, int] = json.loads((SAMPLE_DIR / "labels.json").read_text())
SHIFT = [p for p in PHOTOS[:8]]
PREFIX = "shifts/2026-12-04/"


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


def deployed_definition(synth: Synthesized) -> dict[str, Any]:
    properties = synth.state_machine("BatchCounting")["Properties"]
    assert set(properties["DefinitionSubstitutions"]) == set(b.PLACEHOLDERS)
    text = properties["DefinitionString"]
    for key, value in {
        "DataBucket": BUCKET,
        "NotificationTopicArn": TOPIC_ARN,
        "ReconcileFunctionArn": FUNCTION_ARN,
    }.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text
    asl = json.loads(text)
    asl["States"][b.WAIT_FOR_COUNTS]["Seconds"] = 0
    return asl


def asset_handler(synth: Synthesized) -> Any:
    """The Lambda's handler module, loaded from the synthesized asset folder."""
    (folder,) = {p.parent for p in synth.outdir.glob("asset.*/handler.py")}
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == sorted(lambda_members()), files
    assert (folder / "bincount" / "serving" / "reconcile.py").read_bytes() == (
        Path("bincount") / "serving" / "reconcile.py"
    ).read_bytes()
    spec = importlib.util.spec_from_file_location("batch_reconcile_handler", folder / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeTransform:
    """SageMaker's side of a transform job: each object under the input prefix through the real handler."""

    def __init__(self, model_dir: Path) -> None:
        from bincount.serving.server import load_handler

        self.handler = load_handler()
        self.model = self.handler.model_fn(str(model_dir))
        self.requests: list[dict[str, Any]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = SageMakerModelBackend.create_transform_job
        fake = self

        def create_transform_job(backend: SageMakerModelBackend, **kwargs: Any) -> Any:
            job = original(backend, **kwargs)
            fake.requests.append(kwargs)
            fake.run(job)
            return job

        monkeypatch.setattr(SageMakerModelBackend, "create_transform_job", create_transform_job)

    def run(self, job: Any) -> None:
        s3 = boto3.client("s3", region_name=REGION)
        source = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, _, prefix = source[5:].partition("/")
        out_bucket, _, out_prefix = job.transform_output["S3OutputPath"][5:].partition("/")
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            try:
                h = self.handler
                answer = h.output_fn(h.predict_fn(h.input_fn(body, job.transform_input["ContentType"]), self.model))
            except Exception as e:  # the container's 4xx: the whole job fails
                job.transform_job_status = "Failed"
                job.failure_reason = f"ClientError: {item['Key']}: {e}"
                return
            key = out_prefix.rstrip("/") + "/" + item["Key"][len(prefix) :] + ".out"
            s3.put_object(Bucket=out_bucket, Key=key, Body=answer.encode())


@dataclass
class Run:
    status: str
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    states: list[str]
    notifications: list[dict[str, Any]]
    requests: list[TaskRequest]


@dataclass
class Batch:
    sfn: Any
    s3: Any
    sagemaker: Any
    arn: str
    queue_url: str
    transform: FakeTransform
    sent: list[TaskRequest]
    runs: int = 0

    def run(self, execution_input: dict[str, Any], timeout: float = 120) -> Run:
        """Run one execution; every request its Task states sent must be one AWS accepts (botocore's models)."""
        first_request = len(self.sent)
        self.runs += 1
        arn = self.sfn.start_execution(
            stateMachineArn=self.arn, name=f"shift-{self.runs}", input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        notes = [json.loads(m["Body"]) for m in messages]
        output = described.get("output")
        sent = self.sent[first_request:]
        invalid = [error for request in sent for error in request.errors()]
        assert not invalid, "requests AWS would refuse:\n" + "\n".join(invalid)
        return Run(
            status=described["status"],
            output=json.loads(output) if output else None,
            error=described.get("error"),
            cause=described.get("cause"),
            states=[e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e],
            notifications=[{"Subject": n.get("Subject"), "Message": json.loads(n["Message"])} for n in notes],
            requests=sent,
        )

    def put_photos(self, bucket: str, prefix: str, photos: list[Path], broken: bool = False) -> None:
        for path in photos:
            self.s3.put_object(Bucket=bucket, Key=prefix + path.name, Body=path.read_bytes())
        if broken:
            self.s3.put_object(Bucket=bucket, Key=prefix + "broken.jpg", Body=b"not a photo")

    def read(self, url: str) -> str:
        bucket, _, key = url[5:].partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.fixture
def batch(synth: Synthesized, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Batch]:
    handler = asset_handler(synth)
    transform = FakeTransform(model_dir)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        transform.install(monkeypatch)
        sent = record_requests(monkeypatch)
        install_step_functions_shims(monkeypatch)

        def invoke(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            handler.s3.cache_clear()
            try:
                return json.dumps(handler.handler(event if isinstance(event, dict) else json.loads(event))), False, ""
            except Exception as e:
                return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""

        monkeypatch.setattr(LambdaFunction, "_invoke_lambda", invoke)
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (BUCKET, OTHER_BUCKET):
            s3.create_bucket(Bucket=bucket)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="reconcile", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        buffer = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("handler.py", "def handler(event, context): pass\n")
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=FUNCTION,
            Runtime="python3.12",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": buffer.getvalue()},
        )
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        sagemaker.create_model(
            ModelName=MODEL,
            ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/bincount-sagemaker",
            PrimaryContainer={
                "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bincount:1",
                "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
            },
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName="bincount-config-0123456789ab",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": MODEL,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.t2.medium",
                }
            ],
        )
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="bincount-config-0123456789ab")
        sns = boto3.client("sns", region_name=REGION)
        assert sns.create_topic(Name=TOPIC_NAME)["TopicArn"] == TOPIC_ARN
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=queue_arn)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.create_state_machine(
            name="bincount-batch",
            definition=to_json(deployed_definition(synth)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/bincount-batch",
        )["stateMachineArn"]
        yield Batch(sfn=sfn, s3=s3, sagemaker=sagemaker, arn=arn, queue_url=queue_url, transform=transform, sent=sent)


def _expected_csv() -> str:
    return "id,expected\n" + "".join(f"{p.stem},{LABELS[p.stem]}\n" for p in SHIFT)


def test_a_shift_is_counted_and_reconciled_from_input_to_summary(batch: Batch) -> None:
    batch.put_photos(BUCKET, PREFIX, SHIFT)
    batch.s3.put_object(Bucket=BUCKET, Key="shifts/2026-12-04.csv", Body=_expected_csv().encode())
    run = batch.run({"input": f"s3://{BUCKET}/{PREFIX}", "expected": f"s3://{BUCKET}/shifts/2026-12-04.csv"})
    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.states[:3] == [b.VALIDATE_INPUT, b.CHECK_EXPECTED, b.NAME_JOB]
    assert b.COUNT_PHOTOS in run.states and b.RECONCILE in run.states and run.states[-1] == b.SUCCEEDED

    (request,) = batch.transform.requests  # one photo per request, on the model the endpoint serves
    # moto's forwarding of the optimised integration hands some scalars to its backend wrapped in a list
    assert _scalar(request["model_name"]) == MODEL and _scalar(request["batch_strategy"]) == "SingleRecord"
    assert request["transform_input"]["SplitType"] == "None"
    assert request["transform_input"]["ContentType"] == "application/x-image"
    output = request["transform_output"]["S3OutputPath"]
    assert output.startswith(f"s3://{BUCKET}/{b.OUTPUT_PREFIX}bincount-batch-")
    (sent,) = [r.parameters for r in run.requests if r.state == b.COUNT_PHOTOS]
    assert sent["Tags"] == [{"Key": "bincount:run", "Value": output.rstrip("/").rsplit("-", 1)[-1]}]

    summary = run.output
    assert summary["counts"] == output + "counts.csv" and summary["summary"] == output + "summary.json"
    text = batch.read(summary["counts"])
    assert tuple(next(csv.reader(io.StringIO(text)))) == COLUMNS
    rows = read_counts_csv(text)
    assert sorted(r.id for r in rows) == sorted(p.stem for p in SHIFT)
    assert all(r.expected == LABELS[r.id] and r.error is None for r in rows)
    stored = json.loads(batch.read(summary["summary"]))
    assert stored == summarize(rows) and {k: summary[k] for k in stored} == stored
    assert stored["n"] == len(SHIFT) and stored["errors"] == 0
    assert stored["mismatches"] == sum(r.count != r.expected for r in rows)
    (note,) = run.notifications
    assert note["Subject"] == "bincount: batch counted" and note["Message"]["accuracy"] == stored["accuracy"]


def test_without_expectations_the_summary_has_no_accuracy(batch: Batch) -> None:
    batch.put_photos(BUCKET, "loose/", SHIFT[:3])
    run = batch.run({"input": f"s3://{BUCKET}/loose/"})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.output["n"] == 3 and "accuracy" not in run.output
    assert [r.match for r in read_counts_csv(batch.read(run.output["counts"]))] == [None] * 3


@pytest.mark.parametrize(
    "execution_input",
    [
        {},
        {"input": "shifts/"},
        {"input": 3},
        {"input": f"s3://{BUCKET}/x/", "expected": "expected.csv"},
        {"input": f"s3://{BUCKET}/x/", "expected": 5},
    ],
)
def test_invalid_input_is_refused_with_the_expected_shape(batch: Batch, execution_input) -> None:
    run = batch.run(execution_input)
    assert run.status == "FAILED" and run.error == "BatchFailed"
    assert run.cause.startswith(f"{b.INVALID_INPUT_ERROR}: The execution input needs input")
    assert not batch.transform.requests
    assert run.notifications[0]["Message"]["error"] == b.INVALID_INPUT_ERROR


@pytest.mark.parametrize("which", ["input", "expected"])
def test_a_bucket_outside_the_data_bucket_is_refused_with_a_clear_cause(batch: Batch, which: str) -> None:
    batch.put_photos(OTHER_BUCKET, PREFIX, SHIFT[:2])
    execution_input = {"input": f"s3://{BUCKET}/{PREFIX}", "expected": f"s3://{BUCKET}/e.csv"}
    execution_input[which] = f"s3://{OTHER_BUCKET}/{PREFIX}" if which == "input" else f"s3://{OTHER_BUCKET}/e.csv"
    run = batch.run(execution_input)
    assert run.status == "FAILED", run.states
    assert run.cause.startswith(f"{b.BUCKET_REFUSED_ERROR}: The photos and the expected CSV must be in the data bucket")
    assert BUCKET in run.cause and OTHER_BUCKET in run.cause and "batchInputBuckets" in run.cause
    assert not batch.transform.requests


def test_a_photo_the_model_refuses_fails_the_job_with_its_reason(batch: Batch) -> None:
    batch.put_photos(BUCKET, "bad/", SHIFT[:2], broken=True)
    run = batch.run({"input": f"s3://{BUCKET}/bad/"})
    assert run.status == "FAILED"
    assert run.cause.startswith(f"{b.TRANSFORM_FAILED_ERROR}: The Batch Transform job bincount-batch-")
    assert "broken.jpg" in run.cause and "keep only photos" in run.cause


def test_every_task_state_sends_requests_aws_accepts(batch: Batch, synth: Synthesized) -> None:
    batch.put_photos(BUCKET, PREFIX, SHIFT[:2])
    batch.put_photos(BUCKET, "bad/", SHIFT[:1], broken=True)
    runs = [batch.run({"input": f"s3://{BUCKET}/{PREFIX}"}), batch.run({"input": f"s3://{BUCKET}/bad/"})]
    assert [r.status for r in runs] == ["SUCCEEDED", "FAILED"]
    # Each run() checked its requests; together the two sent one from every Task state of the definition.
    assert {r.state for run in runs for r in run.requests} == task_states(deployed_definition(synth)["States"])


def test_the_reconcile_lambda_and_the_state_machine_have_least_privilege(synth: Synthesized) -> None:
    policies = synth.resources("AWS::IAM::Policy")
    batch_policies = {k: v for k, v in policies.items() if k.startswith("BatchCounting")}
    actions = {
        k: sorted({a for s in v["Properties"]["PolicyDocument"]["Statement"] for a in _list(s["Action"])})
        for k, v in batch_policies.items()
    }
    machine = next(v for k, v in actions.items() if "StateMachineAccess" in k)
    assert machine == sorted(
        [
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:CreateTransformJob",
            "sagemaker:DescribeTransformJob",
            "sagemaker:AddTags",
            "lambda:InvokeFunction",
            "sns:Publish",
        ]
    )
    reconcile = next(v for k, v in actions.items() if "ReconcileAccess" in k)
    assert reconcile == sorted(
        ["logs:CreateLogStream", "logs:PutLogEvents", "s3:ListBucket", "s3:GetObject", "s3:PutObject"]
    )
    for policy in batch_policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "s3:PutObject" in _list(statement["Action"]):
                assert all(b.OUTPUT_PREFIX in json.dumps(r) for r in _list(statement["Resource"]))


def _scalar(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
