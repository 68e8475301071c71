"""BatchCounting: the second state machine (docs/design.md §11), its reconciliation Lambda and their least privileges.

The transform job runs as the model's own execution role (the pipeline's SageMaker role, which created the model): this
construct grants that role read access to the allowed input buckets and write access to ``batch-output/``. The Lambda is
packed by a local bundler with just its handler and :mod:`bincount.serving.reconcile` (no torch, no Docker)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from bincount.paths import PROJECT_ROOT
from stacks.batch.definition import OUTPUT_PREFIX, BatchSpec, batch_definition
from stacks.log_groups import log_group
from stacks.nag import NagWildcard, suppress, suppress_wildcards
from stacks.permissions import Arns, Permission, attach
from stacks.pipeline.asl import to_json

HANDLER_FILE = Path(__file__).resolve().parent / "reconcile_lambda" / "handler.py"
RECONCILE_MODULE = PROJECT_ROOT / "bincount" / "serving" / "reconcile.py"
PACKAGE_DOC = '"""bincount, as packed for the Batch reconciliation Lambda: bincount.serving.reconcile only."""\n'
SERVING_DOC = '"""bincount.serving, as packed for the Batch reconciliation Lambda: reconcile only."""\n'


def lambda_members(root: Path = PROJECT_ROOT) -> dict[str, Path | str]:
    """The Lambda's files: its handler and the one pure-Python module it runs (with a docstring-only package)."""
    return {
        "handler.py": HANDLER_FILE,
        "bincount/__init__.py": PACKAGE_DOC,
        "bincount/serving/__init__.py": SERVING_DOC,
        "bincount/serving/reconcile.py": root / "bincount" / "serving" / "reconcile.py",
    }


@jsii.implements(ILocalBundling)
class ReconcileBundler:
    """Local bundling: copies the Lambda's files into CDK's bundling output folder."""

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        for name, source in lambda_members().items():
            target = Path(output_dir) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, Path):
                shutil.copyfile(source, target)
            else:
                target.write_text(source, encoding="utf-8")
        return True


def bucket_arn(stack: Stack, name: str) -> str:
    return stack.format_arn(service="s3", region="", account="", resource=name)


def read_permissions(prefix: str, bucket_arns: list[str]) -> list[Permission]:
    """Read the photos and the expected CSV anywhere in the allowed buckets (the execution names the prefix)."""
    return [
        Permission(f"{prefix}ListInputs", ["s3:ListBucket"], bucket_arns),
        Permission(
            f"{prefix}ReadInputs", ["s3:GetObject"], [f"{arn}/*" for arn in bucket_arns], wildcard="BatchInputs"
        ),
    ]


class BatchCounting(Construct):
    """The Batch state machine (counts a prefix of photos with the endpoint's model, then reconciles)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: s3.IBucket,
        topic: sns.ITopic,
        model_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        arns = Arns(self, settings)
        buckets = [bucket.bucket_arn, *(bucket_arn(stack, name) for name in settings.batch_buckets)]
        outputs = f"{bucket.bucket_arn}/{OUTPUT_PREFIX}*"

        # The transform job runs as the model's role: read the inputs, write batch-output/.
        model_access = iam.Policy(self, "TransformAccess", roles=[model_role])
        attach(
            model_access,
            [
                *read_permissions("Transform", buckets),
                Permission("WriteTransformOutput", ["s3:PutObject"], [outputs], wildcard="BatchOutputs"),
            ],
        )

        logs = log_group(self, "ReconcileLogs", retention_days=settings.log_retention_days)
        function_role = iam.Role(
            self,
            "ReconcileRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Reads a batch's photos list, transform output and expected CSV; writes counts and summary.",
        )
        function_policy = iam.Policy(self, "ReconcileAccess", roles=[function_role])
        attach(
            function_policy,
            [
                Permission("WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [logs.log_group_arn]),
                *read_permissions("Reconcile", buckets),
                Permission("WriteResults", ["s3:PutObject"], [outputs], wildcard="BatchOutputs"),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Reconcile",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(HANDLER_FILE.parent),
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    image=DockerImage.from_registry("local-bundling-only"), local=ReconcileBundler()
                ),
            ),
            timeout=Duration.minutes(15),
            memory_size=512,
            role=function_role,
            log_group=logs,
            description=(
                "Batch: reconcile the transform's counts with the expected quantities (bincount.serving.reconcile)."
            ),
        )
        self.function.node.add_dependency(function_policy)
        suppress(self.function, "PinnedRuntime")

        endpoint_configs = arns.named("endpoint-config", "config")
        transform_jobs = arns.named("transform-job", "batch")
        role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the bincount Batch state machine's states.",
        )
        policy = iam.Policy(self, "StateMachineAccess", roles=[role])
        attach(
            policy,
            [
                Permission("DescribeEndpoint", ["sagemaker:DescribeEndpoint"], [arns.endpoint]),
                Permission(
                    "DescribeEndpointConfigs",
                    ["sagemaker:DescribeEndpointConfig"],
                    [endpoint_configs],
                    wildcard="ExecutionNamedJobs",
                ),
                Permission(
                    "RunTransformJobs",
                    ["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:AddTags"],
                    [transform_jobs],
                    wildcard="ExecutionNamedJobs",
                ),
                Permission("Reconcile", ["lambda:InvokeFunction"], [self.function.function_arn]),
                Permission("Notify", ["sns:Publish"], [topic.topic_arn]),
            ],
        )
        self.log_group = log_group(
            self,
            "Logs",
            name=f"/aws/vendedlogs/states/{settings.batch_state_machine_name}",
            retention_days=settings.log_retention_days,
        )
        spec = BatchSpec(
            name_prefix=settings.name_prefix,
            endpoint_name=settings.endpoint_name,
            instance_type=settings.batch_instance_type,
            extra_buckets=settings.batch_buckets,
        )
        self.definition = batch_definition(spec)
        self.state_machine = sfn.StateMachine(
            self,
            "BatchStateMachine",
            state_machine_name=settings.batch_state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(to_json(self.definition)),
            definition_substitutions={
                "DataBucket": bucket.bucket_name,
                "NotificationTopicArn": topic.topic_arn,
                "ReconcileFunctionArn": self.function.function_arn,
            },
            role=role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        self.state_machine.node.add_dependency(policy)
        suppress_wildcards(role, [NagWildcard("Resource", "*", "NoResourceLevelPermissions")])
