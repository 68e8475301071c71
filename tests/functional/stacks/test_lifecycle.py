"""Template assertions for the model lifecycle (stacks/lifecycle.py) and monitoring (stacks/monitoring.py): the model
package group, the deployment state machine, the rollback and serving alarms, the approval rules, the dashboard,
the capture prefix's expiry and the usage plan scaled by maxInstances. IAM statements: test_template.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.pipeline.deploy import DEPLOY_PLACEHOLDERS
from tests.functional.stacks.test_template import by_path, render
from tests.support.cdk import Synthesized, synthesized

STATES = "arn:<AWS::Partition>:states:us-east-1:<AWS::AccountId>"


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


def test_the_model_package_group_is_named_and_described(synth: Synthesized) -> None:
    (group,) = synth.resources("AWS::SageMaker::ModelPackageGroup").values()
    assert group["Properties"]["ModelPackageGroupName"] == "bincount-models"
    assert "approved, rejected" in group["Properties"]["ModelPackageGroupDescription"]


def test_the_deployment_state_machine_is_standard_logged_traced_and_named(synth: Synthesized) -> None:
    properties = synth.state_machine("Lifecycle")["Properties"]
    assert properties["StateMachineName"] == "bincount-deploy"
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert render(properties["RoleArn"]) == "<LifecycleDeployRole.Arn>"
    assert render(properties["DefinitionSubstitutions"]) == {
        "DataBucket": "<StorageDataBucket>",
        "SageMakerRoleArn": "<PipelineSageMakerRole.Arn>",
        "NotificationTopicArn": "<NotificationsTopic>",
        "ModelPackageArnPrefix": (
            "arn:<AWS::Partition>:sagemaker:us-east-1:<AWS::AccountId>:model-package/bincount-models/"
        ),
    }
    assert set(properties["DefinitionSubstitutions"]) == set(DEPLOY_PLACEHOLDERS)
    assert by_path(synth, "Lifecycle/DeployLogs/Resource")["Properties"]["LogGroupName"] == (
        "/aws/vendedlogs/states/bincount-deploy"
    )
    # The pipeline (which starts it with .sync:2) is created after it.
    pipeline_id = next(k for k in synth.resources("AWS::StepFunctions::StateMachine") if k.startswith("Pipeline"))
    deploy_id = next(k for k in synth.resources("AWS::StepFunctions::StateMachine") if k.startswith("Lifecycle"))
    assert deploy_id in synth.template_json["Resources"][pipeline_id]["DependsOn"]


def _alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"].get("AlarmName", logical_id): r["Properties"]
        for logical_id, r in synth.resources("AWS::CloudWatch::Alarm").items()
    }


def test_rollback_alarms_watch_the_endpoint_variant_and_notify(synth: Synthesized) -> None:
    alarms = _alarms(synth)
    errors, latency = alarms["bincount-endpoint-5xx"], alarms["bincount-endpoint-model-latency"]
    dimensions = [
        {"Name": "EndpointName", "Value": "bincount-endpoint"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
    )
    assert errors["Threshold"] == 1 and errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == (
        "ModelLatency",
        "p90",
        2_000_000,
    )
    for alarm in (errors, latency):
        assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == dimensions
        assert alarm["TreatMissingData"] == "notBreaching"  # no traffic is no reason to roll back
        assert render(alarm["AlarmActions"]) == ["<NotificationsTopic>"]
    # The blue/green update names exactly these alarms.
    definition = json.loads(synth.state_machine("Lifecycle")["Properties"]["DefinitionString"])
    rollback = definition["States"]["UpdateEndpoint"]["Parameters"]["DeploymentConfig"]["AutoRollbackConfiguration"]
    assert [a["AlarmName"] for a in rollback["Alarms"]] == ["bincount-endpoint-5xx", "bincount-endpoint-model-latency"]


def test_serving_alarms_watch_the_api_and_the_lambda_and_notify(synth: Synthesized) -> None:
    alarms = [a for name, a in _alarms(synth).items() if not name.startswith("bincount-endpoint")]
    by_metric = {a["MetricName"]: a for a in alarms}
    assert set(by_metric) == {"5XXError", "Errors"}
    assert by_metric["5XXError"]["Namespace"] == "AWS/ApiGateway"
    assert by_metric["Errors"]["Namespace"] == "AWS/Lambda"
    assert all(render(a["AlarmActions"]) == ["<NotificationsTopic>"] for a in alarms)


def _rule(synth: Synthesized, name: str) -> dict[str, Any]:
    (rule,) = [r["Properties"] for k, r in synth.resources("AWS::Events::Rule").items() if k.startswith(name)]
    return rule


def test_a_persons_approval_starts_the_deployment_and_a_rejection_notifies(synth: Synthesized) -> None:
    approved = _rule(synth, "LifecycleApprovedByPerson")
    assert approved["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": ["bincount-models"],
            "ModelApprovalStatus": ["Approved"],
            "CustomerMetadataProperties": {"approval": ["manual"]},
        },
    }
    (target,) = approved["Targets"]
    assert render(target["Arn"]) == "<LifecycleDeployStateMachine>"
    role = render(target["RoleArn"]).removeprefix("<").removesuffix(".Arn>")
    (policy,) = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for k, r in synth.resources("AWS::IAM::Policy").items()
        if role in json.dumps(r["Properties"]["Roles"])
    ]
    assert [(s["Action"], render(s["Resource"])) for s in policy] == [
        ("states:StartExecution", "<LifecycleDeployStateMachine>")
    ]
    rejected = _rule(synth, "LifecycleRejectedByPerson")
    assert rejected["EventPattern"]["detail"]["ModelApprovalStatus"] == ["Rejected"]
    (target,) = rejected["Targets"]
    assert render(target["Arn"]) == "<NotificationsTopic>"
    assert "<detail-ApprovalDescription>" in target["InputTransformer"]["InputTemplate"]


def test_the_dashboard_shows_api_lambda_endpoint_and_pipelines(synth: Synthesized) -> None:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "bincount"
    body = json.dumps(render(dashboard["Properties"]["DashboardBody"]))
    for metric in (
        "AWS/ApiGateway",
        "4XXError",
        "5XXError",
        "Latency",
        "AWS/Lambda",
        "Duration",
        "Invocations",
        "ModelLatency",
        "Invocation5XXErrors",
        "CPUUtilization",
        "MemoryUtilization",
        "ExecutionsSucceeded",
        "ExecutionsFailed",
    ):
        assert metric in body, metric
    assert body.count("ExecutionsFailed") == 2  # the pipeline's and the deployment's


def test_captured_requests_expire(synth: Synthesized) -> None:
    properties = by_path(synth, "Storage/DataBucket/Resource")["Properties"]
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert (rules["ExpireCapturedRequests"]["Prefix"], rules["ExpireCapturedRequests"]["ExpirationInDays"]) == (
        "capture/",
        30,
    )


def test_the_usage_plan_scales_with_max_instances() -> None:
    synth = synthesized(maxInstances=3)
    (plan,) = synth.resources("AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {"RateLimit": 15, "BurstLimit": 30}
    assert plan["Properties"]["Quota"] == {"Limit": 30000, "Period": "DAY"}
    (stage,) = synth.resources("AWS::ApiGateway::Stage").values()
    (method,) = stage["Properties"]["MethodSettings"]
    assert (method["ThrottlingRateLimit"], method["ThrottlingBurstLimit"]) == (15, 30)
