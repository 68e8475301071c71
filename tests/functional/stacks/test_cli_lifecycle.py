"""``bincount deploy`` (against the synthesized deployment state machine in moto) and ``bincount captured`` (against
capture files in SageMaker's format in moto's S3). The stack's outputs are the one thing faked (no CloudFormation)."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from bincount.cli import build_parser
from bincount.cli import captured as cli_captured
from bincount.cli import deploy as cli_deploy
from bincount.serving import client
from tests.functional.stacks.test_deployment import DEPLOY_ARN, lifecycle  # noqa: F401 (the fixture)
from tests.functional.stacks.test_state_machine import BUCKET, ENDPOINT
from tests.support.cdk import REGION

JPEG = b"\xff\xd8\xff\xe0 a bin photo"


def outputs(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    monkeypatch.setattr(client, "stack_outputs", lambda cloudformation, stack: values)


def test_deploy_input_is_the_version_and_the_settings() -> None:
    assert cli_deploy.deployment_input(3, ["maxInstances=3", "endpointInstanceType=ml.m5.large"]) == {
        "modelPackageVersion": 3,
        "maxInstances": 3,
        "endpointInstanceType": "ml.m5.large",
    }
    assert cli_deploy.deployment_input(None, []) == {}  # the newest approved version
    with pytest.raises(client.ConfigError, match="KEY=VALUE"):
        cli_deploy.deployment_input(1, ["maxInstances"])


def test_deploy_version_runs_the_deployment_and_waits(lifecycle: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    life = lifecycle()
    life.register()
    arn = life.register()
    # The endpoint polls without waiting in moto (a setting of the deployment, passed like any other).
    args = build_parser().parse_args(
        ["deploy", "--version", "2", "--set", "endpointPollSeconds=0", "--wait", "--region", REGION]
    )
    outputs(monkeypatch, DeployStateMachineArn=DEPLOY_ARN)
    monkeypatch.setattr(cli_deploy, "POLL_SECONDS", 0.05)

    assert args.func(args) == 0

    assert life.of("CreateModel")[-1]["PrimaryContainer"] == {"ModelPackageName": arn}
    (execution,) = life.sfn.list_executions(stateMachineArn=DEPLOY_ARN)["executions"]
    started = life.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {"modelPackageVersion": 2, "endpointPollSeconds": 0}


def test_deploy_of_an_unapproved_version_exits_1_with_the_cause(
    lifecycle: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    life = lifecycle()
    life.register("PendingManualApproval", approval="manual")
    outputs(monkeypatch, DeployStateMachineArn=DEPLOY_ARN)
    monkeypatch.setattr(cli_deploy, "POLL_SECONDS", 0.05)
    args = build_parser().parse_args(["deploy", "--version", "1", "--wait", "--region", REGION])

    assert args.func(args) == 1

    assert "ModelPackageNotApproved" in capsys.readouterr().err


def test_deploy_without_the_stack_output_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs(monkeypatch, BucketName="b")
    assert cli_deploy.run_deploy(argparse.Namespace(version=1, set=[], wait=False, stack="S", region=REGION)) == 2


def capture_record(event_id: str, count: int) -> str:
    """One line as SageMaker's data capture writes it."""
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "image/jpeg",
                    "mode": "INPUT",
                    "data": base64.b64encode(JPEG).decode(),
                    "encoding": "BASE64",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps({"count": count, "confidence": 0.8, "needs_review": False}),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": "2026-12-04T17:00:00Z"},
            "eventVersion": "0",
        }
    )


@pytest.fixture
def capture_files(monkeypatch: pytest.MonkeyPatch) -> Any:
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        prefix = f"capture/{ENDPOINT}/AllTraffic/2026/12/04/17/"
        s3.put_object(Bucket=BUCKET, Key=prefix + "00-a.jsonl", Body=capture_record("e1", 3) + "\n")
        s3.put_object(Bucket=BUCKET, Key=prefix + "05-b.jsonl", Body=capture_record("e2", 5) + "\n")
        s3.put_object(Bucket=BUCKET, Key="capture/other-endpoint/AllTraffic/x.jsonl", Body=capture_record("o", 1))
        outputs(monkeypatch, BucketName=BUCKET, EndpointName=ENDPOINT)
        yield s3


def test_captured_lists_this_endpoints_requests(capture_files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["captured", "--json", "--region", REGION])

    assert args.func(args) == 0

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["count"], r["bytes"], r["contentType"]) for r in rows] == [
        ("e1", 3, len(JPEG), "image/jpeg"),
        ("e2", 5, len(JPEG), "image/jpeg"),
    ]


def test_captured_downloads_photos_and_answers(capture_files: Any, tmp_path: Path) -> None:
    args = build_parser().parse_args(["captured", "--download", str(tmp_path / "new"), "--region", REGION])

    assert args.func(args) == 0

    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["e1.jpg", "e1.json", "e2.jpg", "e2.json"]
    assert (tmp_path / "new" / "e2.jpg").read_bytes() == JPEG
    assert json.loads((tmp_path / "new" / "e2.json").read_text())["count"] == 5


def test_a_record_without_an_answer_is_still_listed() -> None:
    line = json.loads(capture_record("e3", 2))
    del line["captureData"]["endpointOutput"]
    (record,) = cli_captured.parse_records(json.dumps(line))
    assert record.answer is None and record.photo == JPEG
    assert "count" not in record.summary()
