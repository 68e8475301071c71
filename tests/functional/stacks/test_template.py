"""Template assertions: every resource's security-relevant properties and every IAM statement, by construct path.

Policies and roles are found by their construct path (``aws:cdk:path``), never by generated logical ids; ARNs are
rendered the way cdk-nag prints them (``<StorageDataBucket.Arn>/train/*``: a reference to a logical id without its
hash suffix) so expected statements read like the policy they describe.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from bincount.data.manifest import SPLITS, read_manifest, split_counts
from bincount.local.api import load_lambda_module
from stacks.storage import dataset_manifest
from tests.support.cdk import Synthesized, synthesized

ACCOUNT = "<AWS::AccountId>"
PARTITION = "<AWS::Partition>"
SAGEMAKER = f"arn:{PARTITION}:sagemaker:us-east-1:{ACCOUNT}"
STATES = f"arn:{PARTITION}:states:us-east-1:{ACCOUNT}"
BUCKET = "<StorageDataBucket.Arn>"


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


# --- rendering CloudFormation values ---------------------------------------------------------------------------


def _name(logical_id: str) -> str:
    return re.sub(r"[0-9A-F]{8}$", "", logical_id)


def render(value: Any) -> Any:
    """A CloudFormation value as readable text: ``{"Ref": "X1234ABCD"}`` -> ``<X>``, joins joined."""
    if isinstance(value, list):
        return [render(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return f"<{_name(value['Ref'])}>"
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{_name(logical_id)}.{attribute}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(render(p)) for p in parts)
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
    return {k: render(v) for k, v in value.items()}


def by_path(synth: Synthesized, path: str) -> dict[str, Any]:
    """The template resource of the construct at ``<stack>/<path>`` (walking the construct tree, not logical ids)."""
    construct = synth.stack
    for part in path.split("/"):
        construct = construct.node.find_child(part)
    return synth.template_json["Resources"][synth.stack.resolve(synth.stack.get_logical_id(construct))]


def statements(synth: Synthesized, policy_path: str) -> dict[str, tuple[list[str], list[str], dict[str, Any]]]:
    """A policy's statements by Sid: (actions, resources, conditions), rendered and sorted."""
    found = {}
    for s in by_path(synth, policy_path)["Properties"]["PolicyDocument"]["Statement"]:
        assert s["Effect"] == "Allow"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = render(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
        found[s.get("Sid", "")] = (sorted(actions), sorted(resources), s.get("Condition", {}))
    return found


# --- IAM: every statement of every policy ------------------------------------------------------------------------

SAGEMAKER_ROLE_STATEMENTS = {
    "ListDataBucket": (["s3:ListBucket"], [BUCKET], {}),
    "ReadChannels": (["s3:GetObject"], sorted(f"{BUCKET}/{s}/*" for s in SPLITS), {}),
    "ReadWriteJobOutputs": (["s3:GetObject", "s3:PutObject"], [f"{BUCKET}/checkpoints/*", f"{BUCKET}/jobs/*"], {}),
    "WriteCapturedRequests": (["s3:PutObject"], [f"{BUCKET}/capture/*"], {}),
    "PullContainerImages": (
        ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        [
            # No sagemaker-debugger-rules repository: Debugger's rules run only with sagemakerDebugger.
            f"arn:{PARTITION}:ecr:us-east-1:763104351884:repository/pytorch-training",
            # The endpoint's image, built from inference/Dockerfile into the bootstrap's asset repository.
            f"arn:{PARTITION}:ecr:us-east-1:{ACCOUNT}:repository/cdk-hnb659fds-container-assets-{ACCOUNT}-us-east-1",
        ],
        {},
    ),
    "AuthenticateToEcr": (["ecr:GetAuthorizationToken"], ["*"], {}),
    "WriteSageMakerLogs": (
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        [f"arn:{PARTITION}:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/*"],
        {},
    ),
    "PublishSageMakerMetrics": (
        ["cloudwatch:PutMetricData"],
        ["*"],
        {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
    ),
    # dataset: full (BuildFullManifest, and the jobs reading full/)
    "ListPublicMetadata": (
        ["s3:ListBucket"],
        [f"arn:{PARTITION}:s3:::aft-vbi-pds"],
        {"StringLike": {"s3:prefix": ["metadata/*"]}},
    ),
    "ReadPublicDataset": (
        ["s3:GetObject"],
        [f"arn:{PARTITION}:s3:::aft-vbi-pds/bin-images/*", f"arn:{PARTITION}:s3:::aft-vbi-pds/metadata/*"],
        {},
    ),
    "ReadWriteFullDataset": (["s3:GetObject", "s3:PutObject"], [f"{BUCKET}/full/*"], {}),
}

STATE_MACHINE_STATEMENTS = {
    "ReadPublicImages": (["s3:GetObject"], [f"arn:{PARTITION}:s3:::aft-vbi-pds/bin-images/*"], {}),
    "ReadManifest": (["s3:GetObject"], [f"{BUCKET}/manifests/manifest.json"], {}),
    "CheckCopiedImages": (["s3:ListBucket"], [BUCKET], {"StringLike": {"s3:prefix": ["train/*", "valid/*", "test/*"]}}),
    "WriteDataset": (["s3:PutObject"], sorted(f"{BUCKET}/{s}/*" for s in SPLITS), {}),
    "WriteMapRunResults": (
        ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
        [f"{BUCKET}/map-runs/*"],
        {},
    ),
    "StartCopyMapRun": (["states:StartExecution"], [f"{STATES}:stateMachine:bincount-pipeline"], {}),
    "TrackCopyMapRun": (
        ["states:DescribeExecution", "states:StopExecution"],
        [f"{STATES}:execution:bincount-pipeline/*"],
        {},
    ),
    "CountCopiedImages": (["states:DescribeMapRun"], [f"{STATES}:mapRun:bincount-pipeline/CopyImages:*"], {}),
    "RunTuningJobs": (
        [
            "sagemaker:AddTags",
            "sagemaker:CreateHyperParameterTuningJob",
            "sagemaker:DescribeHyperParameterTuningJob",
            "sagemaker:ListTags",
            "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
            "sagemaker:StopHyperParameterTuningJob",
        ],
        [f"{SAGEMAKER}:hyper-parameter-tuning-job/bincount-hpo-*"],
        {},
    ),
    "RunTrainingJobs": (
        [
            "sagemaker:AddTags",
            "sagemaker:CreateTrainingJob",
            "sagemaker:DescribeTrainingJob",
            "sagemaker:ListTags",
            "sagemaker:StopTrainingJob",
        ],
        [f"{SAGEMAKER}:training-job/bincount-features-*", f"{SAGEMAKER}:training-job/bincount-train-*"],
        {},
    ),
    "ManageSyncRules": (
        ["events:DescribeRule", "events:PutRule", "events:PutTargets"],
        [
            f"arn:{PARTITION}:events:us-east-1:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
            f"arn:{PARTITION}:events:us-east-1:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerTuningJobsRule",
            f"arn:{PARTITION}:events:us-east-1:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
        ],
        {},
    ),
    "PassSageMakerRole": (
        ["iam:PassRole"],
        ["<PipelineSageMakerRole.Arn>"],
        {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    ),
    # The model registry and the deployment it waits for; the deployment's own role does the endpoint.
    "RegisterModels": (
        ["sagemaker:AddTags", "sagemaker:CreateModelPackage", "sagemaker:ListTags", "sagemaker:UpdateModelPackage"],
        [f"{SAGEMAKER}:model-package-group/bincount-models", f"{SAGEMAKER}:model-package/bincount-models/*"],
        {},
    ),
    "StartDeployment": (["states:StartExecution"], [f"{STATES}:stateMachine:bincount-deploy"], {}),
    "TrackDeployment": (
        ["states:DescribeExecution", "states:StopExecution"],
        [f"{STATES}:execution:bincount-deploy:*"],
        {},
    ),
    "Notify": (["sns:Publish"], ["<NotificationsTopic>"], {}),
    # dataset: full
    "CheckFullManifest": (["s3:ListBucket"], [BUCKET], {"StringLike": {"s3:prefix": ["full/manifest.json"]}}),
    "RunManifestJob": (
        [
            "sagemaker:AddTags",
            "sagemaker:CreateTrainingJob",
            "sagemaker:DescribeTrainingJob",
            "sagemaker:ListTags",
            "sagemaker:StopTrainingJob",
        ],
        [f"{SAGEMAKER}:training-job/bincount-manifest-*"],
        {},
    ),
}

HANDLER_STATEMENTS = {
    "WriteLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], ["<ServingHandlerLogs.Arn>"], {}),
    "InvokeEndpoint": (
        ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
        [f"{SAGEMAKER}:endpoint/bincount-endpoint"],
        {},
    ),
}

CLEANUP_STATEMENTS = {
    "WriteLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], ["<CleanupLogs.Arn>"], {}),
    "ListExecutions": (["states:ListExecutions"], [f"{STATES}:stateMachine:bincount-pipeline"], {}),
    "StopExecutions": (["states:StopExecution"], [f"{STATES}:execution:bincount-pipeline:*"], {}),
    "ListPipelineResources": (
        [
            "sagemaker:ListEndpointConfigs",
            "sagemaker:ListHyperParameterTuningJobs",
            "sagemaker:ListModels",
            "sagemaker:ListTrainingJobs",
        ],
        ["*"],
        {},
    ),
    "StopTuningJobs": (
        ["sagemaker:StopHyperParameterTuningJob"],
        [f"{SAGEMAKER}:hyper-parameter-tuning-job/bincount-hpo-*"],
        {},
    ),
    "StopTrainingJobs": (["sagemaker:StopTrainingJob"], [f"{SAGEMAKER}:training-job/bincount-*"], {}),
    "DeleteEndpoint": (
        ["sagemaker:DeleteEndpoint", "sagemaker:DescribeEndpoint"],
        [f"{SAGEMAKER}:endpoint/bincount-endpoint"],
        {},
    ),
    "DeleteEndpointConfigsAndModels": (
        ["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
        [f"{SAGEMAKER}:endpoint-config/bincount-config-*", f"{SAGEMAKER}:model/bincount-model-*"],
        {},
    ),
    "ListDeployments": (["states:ListExecutions"], ["<LifecycleDeployStateMachine>"], {}),
    "StopDeployments": (["states:StopExecution"], [f"{STATES}:execution:bincount-deploy:*"], {}),
    "FindScalableTarget": (["application-autoscaling:DescribeScalableTargets"], ["*"], {}),
    "RemoveAutoscaling": (
        ["application-autoscaling:DeregisterScalableTarget"],
        [f"arn:{PARTITION}:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/*"],
        {},
    ),
    "DeleteModelVersions": (
        ["sagemaker:DeleteModelPackage"],
        [f"{SAGEMAKER}:model-package/bincount-models/*"],
        {},
    ),
    "ListModelVersions": (["sagemaker:ListModelPackages"], ["*"], {}),
    "DeleteEndpointLogs": (
        ["logs:DeleteLogGroup"],
        [f"arn:{PARTITION}:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/bincount-endpoint"],
        {},
    ),
}

DEPLOYMENT_STATEMENTS = {
    "DescribeModelPackages": (
        ["sagemaker:DescribeModelPackage"],
        [f"{SAGEMAKER}:model-package/bincount-models/*"],
        {},
    ),
    "FindApprovedModelPackages": (["sagemaker:ListModelPackages"], ["*"], {}),
    "CreateModels": (
        ["sagemaker:AddTags", "sagemaker:CreateModel", "sagemaker:ListTags"],
        [f"{SAGEMAKER}:model/bincount-model-*"],
        {},
    ),
    "CreateEndpointConfigs": (
        ["sagemaker:AddTags", "sagemaker:CreateEndpointConfig", "sagemaker:ListTags"],
        [f"{SAGEMAKER}:endpoint-config/bincount-config-*"],
        {},
    ),
    "DeployEndpoint": (
        ["sagemaker:AddTags", "sagemaker:CreateEndpoint", "sagemaker:ListTags", "sagemaker:UpdateEndpoint"],
        [f"{SAGEMAKER}:endpoint-config/bincount-config-*", f"{SAGEMAKER}:endpoint/bincount-endpoint"],
        {},
    ),
    "WatchEndpoint": (
        [
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:UpdateEndpointWeightsAndCapacities",
        ],
        [f"{SAGEMAKER}:endpoint-config/bincount-config-*", f"{SAGEMAKER}:endpoint/bincount-endpoint"],
        {},
    ),
    "FindEndpoint": (["sagemaker:ListEndpoints"], ["*"], {}),
    "PassSageMakerRole": (
        ["iam:PassRole"],
        ["<PipelineSageMakerRole.Arn>"],
        {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    ),
    "ScaleEndpoint": (
        [
            "application-autoscaling:DeregisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:RegisterScalableTarget",
        ],
        [f"arn:{PARTITION}:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/*"],
        {},
    ),
    "FindScalableTarget": (["application-autoscaling:DescribeScalableTargets"], ["*"], {}),
    "TargetTrackingAlarms": (
        ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm"],
        [
            f"arn:{PARTITION}:cloudwatch:us-east-1:{ACCOUNT}:alarm:"
            "TargetTracking-endpoint/bincount-endpoint/variant/AllTraffic-*"
        ],
        {},
    ),
    "ReadAlarms": (["cloudwatch:DescribeAlarms"], ["*"], {}),
    "CreateAutoscalingRole": (
        ["iam:CreateServiceLinkedRole"],
        [
            f"arn:{PARTITION}:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        ],
        {"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
    ),
    "Notify": (["sns:Publish"], ["<NotificationsTopic>"], {}),
}


@pytest.mark.parametrize(
    ("policy_path", "expected"),
    [
        ("Pipeline/SageMakerAccess/Resource", SAGEMAKER_ROLE_STATEMENTS),
        ("Pipeline/StateMachineAccess/Resource", STATE_MACHINE_STATEMENTS),
        ("Serving/HandlerAccess/Resource", HANDLER_STATEMENTS),
        ("Cleanup/Access/Resource", CLEANUP_STATEMENTS),
        ("Lifecycle/DeployAccess/Resource", DEPLOYMENT_STATEMENTS),
    ],
    ids=["sagemaker-role", "state-machine-role", "api-handler-role", "cleanup-role", "deployment-role"],
)
def test_every_statement_of_our_policies(synth: Synthesized, policy_path: str, expected: dict[str, Any]) -> None:
    found = statements(synth, policy_path)
    if policy_path == "Pipeline/SageMakerAccess/Resource":
        # The training source: exactly the one tarball object in the CDK asset bucket.
        (actions, (source,), _) = found.pop("ReadTrainingSource")
        assert actions == ["s3:GetObject"]
        assert re.fullmatch(
            rf"arn:{PARTITION}:s3:::cdk-[a-z0-9]+-assets-{ACCOUNT}-us-east-1/[0-9a-f]{{64}}\.gz", source
        )
    assert found == expected


def test_cdk_added_statements_are_only_log_delivery_and_tracing(synth: Synthesized) -> None:
    document = by_path(synth, "Pipeline/StateMachineRole/DefaultPolicy/Resource")["Properties"]["PolicyDocument"]
    assert [(sorted(s["Action"]), s["Resource"]) for s in document["Statement"]] == [
        (
            [
                "logs:CreateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:DescribeLogGroups",
                "logs:DescribeResourcePolicies",
                "logs:GetLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:UpdateLogDelivery",
            ],
            "*",
        ),
        (
            ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "*",
        ),
    ]
    handler = by_path(synth, "Serving/HandlerRole/DefaultPolicy/Resource")["Properties"]["PolicyDocument"]
    assert [(sorted(s["Action"]), s["Resource"]) for s in handler["Statement"]] == [
        (["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "*")
    ]


@pytest.mark.parametrize(
    ("role_path", "service"),
    [
        ("Pipeline/SageMakerRole/Resource", "sagemaker.amazonaws.com"),
        ("Pipeline/StateMachineRole/Resource", "states.amazonaws.com"),
        ("Serving/HandlerRole/Resource", "lambda.amazonaws.com"),
        ("Cleanup/Role/Resource", "lambda.amazonaws.com"),
        ("Lifecycle/DeployRole/Resource", "states.amazonaws.com"),
    ],
)
def test_roles_trust_only_their_service_and_have_no_managed_policies(
    synth: Synthesized, role_path: str, service: str
) -> None:
    role = by_path(synth, role_path)["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": service}}
    ]
    assert "ManagedPolicyArns" not in role and "Policies" not in role


def test_only_cdk_helpers_use_managed_policies(synth: Synthesized) -> None:
    managed = {
        logical_id: render(r["Properties"]["ManagedPolicyArns"])
        for logical_id, r in synth.resources("AWS::IAM::Role").items()
        if "ManagedPolicyArns" in r["Properties"]
    }
    assert sorted(managed.values()) == sorted(
        [
            ["arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
            ["arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
            ["arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        ]
    )
    assert all(name.startswith("Custom") or "CloudWatchRole" in name for name in managed)


# --- storage -------------------------------------------------------------------------------------------------


def test_data_bucket_is_encrypted_private_versioned_logged_and_expires_job_outputs(synth: Synthesized) -> None:
    bucket = by_path(synth, "Storage/DataBucket/Resource")
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert (
        all(properties["PublicAccessBlockConfiguration"].values())
        and len(properties["PublicAccessBlockConfiguration"]) == 4
    )
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert render(properties["LoggingConfiguration"]) == {
        "DestinationBucketName": "<StorageAccessLogs>",
        "LogFilePrefix": "data-bucket/",
    }
    rules = {r["Id"]: r for r in properties["LifecycleConfiguration"]["Rules"]}
    assert (rules["ExpireJobOutputs"]["Prefix"], rules["ExpireJobOutputs"]["ExpirationInDays"]) == ("jobs/", 90)
    assert (rules["ExpireCheckpoints"]["Prefix"], rules["ExpireCheckpoints"]["ExpirationInDays"]) == (
        "checkpoints/",
        30,
    )
    assert rules["ExpireOldVersions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert bucket["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("bucket", ["DataBucket", "AccessLogs"])
def test_buckets_refuse_plain_http_and_are_emptied_on_destroy(synth: Synthesized, bucket: str) -> None:
    policy = by_path(synth, f"Storage/{bucket}/Policy/Resource")["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    assert {"Key": "aws-cdk:auto-delete-objects", "Value": "true"} in by_path(synth, f"Storage/{bucket}/Resource")[
        "Properties"
    ]["Tags"]


def test_manifest_is_deployed_to_the_bucket_with_every_image_of_the_subset(synth: Synthesized) -> None:
    deployment = by_path(synth, "Storage/Manifest/CustomResource/Default")["Properties"]
    assert render(deployment["DestinationBucketName"]) == "<StorageDataBucket>"
    assert (deployment["DestinationBucketKeyPrefix"], deployment["Prune"], deployment["Extract"]) == (
        "manifests/",
        True,
        True,
    )
    (key,) = deployment["SourceObjectKeys"]
    asset_dir = synth.outdir / f"asset.{key.removesuffix('.zip')}"
    manifest = asset_dir / "manifest.json"
    assert manifest.read_text() == dataset_manifest(None)
    entries = read_manifest(manifest)
    assert len(entries) == 10441
    counts = split_counts(entries)
    assert sum(counts["train"].values()) > 8 * sum(counts["test"].values())


# --- pipeline, notifications ---------------------------------------------------------------------------------


def test_state_machine_is_standard_logged_traced_and_named(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "bincount-pipeline",
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True, "Destinations": Match.any_value()},
            "TracingConfiguration": {"Enabled": True},
        },
    )
    properties = synth.state_machine()["Properties"]
    assert render(properties["RoleArn"]) == "<PipelineStateMachineRole.Arn>"
    substitutions = render(properties["DefinitionSubstitutions"])
    assert re.fullmatch(
        r"s3://cdk-[a-z0-9]+-assets-<AWS::AccountId>-us-east-1/[0-9a-f]{64}\.gz", substitutions.pop("TrainingSourceUrl")
    )
    assert re.fullmatch(
        r"<AWS::AccountId>\.dkr\.ecr\.us-east-1\.<AWS::URLSuffix>/cdk-[a-z0-9]+-container-assets-<AWS::AccountId>"
        r"-us-east-1:[0-9a-f]{64}",
        substitutions.pop("InferenceImage"),
    )
    assert substitutions == {
        "DataBucket": "<StorageDataBucket>",
        "SageMakerRoleArn": "<PipelineSageMakerRole.Arn>",
        "NotificationTopicArn": "<NotificationsTopic>",
        "DeployStateMachineArn": f"{STATES}:stateMachine:bincount-deploy",
    }
    assert by_path(synth, "Pipeline/Logs/Resource")["Properties"]["LogGroupName"] == (
        "/aws/vendedlogs/states/bincount-pipeline"
    )


def test_topic_is_encrypted_and_ssl_only_without_subscription_by_default(synth: Synthesized) -> None:
    topic = synth.only("AWS::SNS::Topic")["Properties"]
    # The stack's own key (rotated): CloudWatch alarms and EventBridge rules cannot use aws/sns.
    assert render(topic["KmsMasterKeyId"]) == "<NotificationsTopicKey.Arn>"
    key = synth.only("AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True and key["Properties"]["PendingWindowInDays"] == 7
    assert key["DeletionPolicy"] == "Delete"
    (publishers,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AlarmsAndRulesPublish"]
    assert publishers["Principal"] == {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]}
    assert sorted(publishers["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    policy = synth.only("AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    synth.template.resource_count_is("AWS::SNS::Subscription", 0)


def test_every_log_group_has_the_retention_and_goes_with_the_stack(synth: Synthesized) -> None:
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) == 7  # with the Batch state machine's and its Lambda's
    assert all(g["Properties"]["RetentionInDays"] == 30 and g["DeletionPolicy"] == "Delete" for g in groups.values())


# --- serving -------------------------------------------------------------------------------------------------


def test_api_handler_function(synth: Synthesized) -> None:
    function = by_path(synth, "Serving/Handler/Resource")["Properties"]
    assert (function["Runtime"], function["Handler"]) == ("python3.12", "api.handler")
    # What the handler computes from its clients' timeouts (tests/functional/api/test_api.py: it fits in 29 s).
    assert function["Timeout"] == load_lambda_module("api").TIMEOUT_S == 27
    assert function["Environment"] == {"Variables": {"ENDPOINT_NAME": "bincount-endpoint"}}
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert render(function["Role"]) == "<ServingHandlerRole.Arn>"
    assert render(function["LoggingConfig"]) == {"LogGroup": "<ServingHandlerLogs>"}


def test_api_is_regional_binary_and_validated(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "BinaryMediaTypes": ["image/jpeg", "image/png", "application/x-image"],
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "ApiKeySourceType": "HEADER",
        },
    )
    synth.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": False, "ValidateRequestParameters": True}
    )


@pytest.mark.parametrize(("method", "path"), [("POST", "count"), ("GET", "health")])
def test_routes_need_the_api_key_and_proxy_to_the_handler(synth: Synthesized, method: str, path: str) -> None:
    properties = by_path(synth, f"Serving/Api/Default/{path}/{method}/Resource")["Properties"]
    assert properties["ApiKeyRequired"] is True
    assert properties["Integration"]["Type"] == "AWS_PROXY"
    assert "<ServingHandler.Arn>" in render(properties["Integration"]["Uri"])
    assert render(properties["RequestValidatorId"]) == "<ServingApiRequestValidator>"
    if method == "POST":
        assert properties["RequestParameters"] == {"method.request.header.Content-Type": True}
    synth.template.resource_count_is("AWS::ApiGateway::Method", 2)


def test_stage_logs_traces_and_throttles(synth: Synthesized) -> None:
    stage = by_path(synth, "Serving/Api/DeploymentStage.v1/Resource")["Properties"]
    assert stage["StageName"] == "v1" and stage["TracingEnabled"] is True
    assert render(stage["AccessLogSetting"]["DestinationArn"]) == "<ServingAccessLogs.Arn>"
    assert set(json.loads(stage["AccessLogSetting"]["Format"])) >= {"requestId", "ip", "status", "httpMethod"}
    (settings,) = stage["MethodSettings"]
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (5, 10)


def test_usage_plan_is_sized_for_one_small_instance(synth: Synthesized) -> None:
    """With the default maxInstances 1; test_lifecycle.py scales it."""
    synth.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Throttle": {"RateLimit": 5, "BurstLimit": 10}, "Quota": {"Limit": 10000, "Period": "DAY"}},
    )
    synth.template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    synth.template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


@pytest.mark.parametrize(
    ("response_type", "status"),
    [
        ("THROTTLED", "429"),
        ("QUOTA_EXCEEDED", "429"),
        ("INVALID_API_KEY", "403"),
        ("BAD_REQUEST_PARAMETERS", "400"),
        ("REQUEST_TOO_LARGE", "413"),
        ("MISSING_AUTHENTICATION_TOKEN", "404"),
    ],
)
def test_gateway_errors_are_json_like_the_handler(synth: Synthesized, response_type: str, status: str) -> None:
    (response,) = [
        r["Properties"]
        for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["ResponseType"] == response_type
    ]
    assert response["StatusCode"] == status
    assert set(json.loads(response["ResponseTemplates"]["application/json"])) == {"error"}


# --- cleanup and outputs -------------------------------------------------------------------------------------


def test_cleanup_runs_before_the_state_machine_is_deleted(synth: Synthesized) -> None:
    function = by_path(synth, "Cleanup/Handler/Resource")["Properties"]
    assert (function["Handler"], function["Timeout"], function["Runtime"]) == ("cleanup.handler", 900, "python3.12")
    (resource,) = synth.resources("Custom::PipelineCleanup").values()
    # Referencing the state machine makes CloudFormation delete this resource (and run the cleanup) first.
    assert render(resource["Properties"]) == {
        "ServiceToken": "<CleanupHandler.Arn>",
        "NamePrefix": "bincount",
        "EndpointName": "bincount-endpoint",
        "StateMachineArn": "<PipelineStateMachine>",
        "DeployStateMachineArn": "<LifecycleDeployStateMachine>",
        "ModelPackageGroupName": "bincount-models",
        "ScalableTargetId": "endpoint/bincount-endpoint/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    # ... and before the model package group, which CloudFormation deletes only once the cleanup emptied it.
    group = next(iter(synth.resources("AWS::SageMaker::ModelPackageGroup")))
    (cleanup_id,) = synth.resources("Custom::PipelineCleanup")
    assert group in synth.template_json["Resources"][cleanup_id]["DependsOn"]


def test_outputs(synth: Synthesized) -> None:
    outputs = {k: render(v["Value"]) for k, v in synth.template_json["Outputs"].items()}
    assert (
        outputs["ApiUrl"]
        == "https://<ServingApi>.execute-api.us-east-1.<AWS::URLSuffix>/<ServingApiDeploymentStagev1>/"
    )
    assert outputs["ApiKeyId"] == "<ServingApiApiKey>"
    assert outputs["ApiKeyValueCommand"] == (
        "aws apigateway get-api-key --api-key <ServingApiApiKey> --include-value --query value --output text "
        "--region us-east-1"
    )
    assert outputs["StateMachineArn"] == "<PipelineStateMachine>"
    assert outputs["StateMachineConsoleUrl"] == (
        "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/statemachines/view/"
        "<PipelineStateMachine>"
    )
    assert outputs["StartExecutionCommand"].endswith("--input '{}' --region us-east-1")
    assert outputs["BucketName"] == "<StorageDataBucket>"
    assert outputs["EndpointName"] == "bincount-endpoint"
    assert outputs["NotificationTopicArn"] == "<NotificationsTopic>"
    assert outputs["DeployStateMachineArn"] == "<LifecycleDeployStateMachine>"
    assert outputs["ModelPackageGroupName"] == "bincount-models"
    assert outputs["DashboardUrl"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/bincount"
    )
