"""IAM for the pipeline: the SageMaker execution role's and the state machine role's statements (docs/design.md §6)."""

from __future__ import annotations

from collections.abc import Sequence

from stacks.permissions import Arns, Permission
from stacks.pipeline.definition import MAP_LABEL
from stacks.storage import (
    CAPTURE_PREFIX,
    CHANNEL_PREFIXES,
    CHECKPOINTS_PREFIX,
    JOBS_PREFIX,
    MANIFEST_KEY,
    MAP_RUNS_PREFIX,
)

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# The managed EventBridge rules through which Step Functions' .sync integration learns that a job finished.
SYNC_RULES: tuple[str, ...] = (
    "StepFunctionsGetEventsForSageMakerTuningJobsRule",
    "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "StepFunctionsGetEventsForStepFunctionsExecutionRule",
)


def sagemaker_execution_permissions(
    arns: Arns, *, bucket_arn: str, repositories: Sequence[str], source_object_arn: str
) -> list[Permission]:
    """What tuning trials, the training job, its Debugger rules and the model's container do; ``repositories`` are
    the ECR repositories of their images."""
    return [
        Permission("ListDataBucket", ["s3:ListBucket"], [bucket_arn]),
        Permission(
            "ReadChannels",
            ["s3:GetObject"],
            [f"{bucket_arn}/{prefix}*" for prefix in CHANNEL_PREFIXES],
            wildcard="ChannelReads",
        ),
        Permission(
            "ReadWriteJobOutputs",
            ["s3:GetObject", "s3:PutObject"],
            [f"{bucket_arn}/{JOBS_PREFIX}*", f"{bucket_arn}/{CHECKPOINTS_PREFIX}*"],
            wildcard="JobOutputs",
        ),
        Permission("ReadTrainingSource", ["s3:GetObject"], [source_object_arn]),
        # The endpoint writes the requests and responses it captures (dataCapturePercent > 0) as this role.
        Permission(
            "WriteCapturedRequests", ["s3:PutObject"], [f"{bucket_arn}/{CAPTURE_PREFIX}*"], wildcard="CapturedRequests"
        ),
        Permission(
            "PullContainerImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            sorted(set(repositories)),
        ),
        Permission("AuthenticateToEcr", ["ecr:GetAuthorizationToken"], ["*"], wildcard="NoResourceLevelPermissions"),
        Permission(
            "WriteSageMakerLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [arns.log_groups("/aws/sagemaker/*")],
            wildcard="SageMakerLogs",
        ),
        Permission(
            "PublishSageMakerMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            wildcard="NoResourceLevelPermissions",
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
        ),
    ]


def state_machine_permissions(
    arns: Arns,
    *,
    bucket_arn: str,
    sagemaker_role_arn: str,
    topic_arn: str,
    model_package_group_arn: str,
    model_versions_arn: str,
    deploy_state_machine_arn: str,
    deploy_executions_arn: str,
) -> list[Permission]:
    """Exactly the actions the pipeline's states call, on the resources they call them on."""
    tuning_jobs = arns.named("hyper-parameter-tuning-job", "hpo")
    # The final job (<prefix>-train-...) and the feature-extraction job (<prefix>-features-...).
    training_jobs = [arns.named("training-job", kind) for kind in ("features", "train")]
    return [
        # PrepareDataset
        Permission("ReadPublicImages", ["s3:GetObject"], [arns.public_images()], wildcard="PublicImages"),
        Permission("ReadManifest", ["s3:GetObject"], [f"{bucket_arn}/{MANIFEST_KEY}"]),
        Permission(
            "CheckCopiedImages",
            ["s3:ListBucket"],
            [bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in CHANNEL_PREFIXES]}},
        ),
        Permission(
            "WriteDataset",
            ["s3:PutObject"],
            [f"{bucket_arn}/{prefix}*" for prefix in CHANNEL_PREFIXES],
            wildcard="DatasetObjects",
        ),
        Permission(
            "WriteMapRunResults",
            ["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            [f"{bucket_arn}/{MAP_RUNS_PREFIX}*"],
            wildcard="MapRunResults",
        ),
        Permission("StartCopyMapRun", ["states:StartExecution"], [arns.state_machine]),
        Permission(
            "TrackCopyMapRun",
            ["states:DescribeExecution", "states:StopExecution"],
            [arns.executions("/")],
            wildcard="MapChildExecutions",
        ),
        Permission("CountCopiedImages", ["states:DescribeMapRun"], [arns.map_runs(MAP_LABEL)], wildcard="MapRuns"),
        # Tune and Train (.sync)
        Permission(
            "RunTuningJobs",
            [
                "sagemaker:CreateHyperParameterTuningJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:StopHyperParameterTuningJob",
                "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            [tuning_jobs],
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "RunTrainingJobs",
            [
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            training_jobs,
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "ManageSyncRules",
            ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            [arns.events_rule(rule) for rule in SYNC_RULES],
        ),
        Permission(
            "PassSageMakerRole",
            ["iam:PassRole"],
            [sagemaker_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        ),
        # RegisterModel, RecordApproval, StartDeployment (.sync:2). ListTags beside AddTags, as for the jobs.
        Permission(
            "RegisterModels",
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:UpdateModelPackage",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            [model_package_group_arn, model_versions_arn],
            wildcard="ModelVersions",
        ),
        Permission("StartDeployment", ["states:StartExecution"], [deploy_state_machine_arn]),
        Permission(
            "TrackDeployment",
            ["states:DescribeExecution", "states:StopExecution"],
            [deploy_executions_arn],
            wildcard="DeployExecutions",
        ),
        # Notify
        Permission("Notify", ["sns:Publish"], [topic_arn]),
    ]
