"""The TrainingPipeline construct: SageMaker execution role, state machine role, log group and state machine."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from bincount.data.manifest import SOURCE_BUCKET
from stacks.endpoint_image import ServingImage
from stacks.images import ContainerImages
from stacks.log_groups import log_group
from stacks.nag import NagWildcard, suppress_wildcards
from stacks.permissions import Arns, attach
from stacks.pipeline import scale
from stacks.pipeline.asl import INFERENCE_IMAGE, to_json
from stacks.pipeline.definition import PipelineSpec, pipeline_definition
from stacks.pipeline.iam import sagemaker_execution_permissions, state_machine_permissions


def pipeline_defaults(settings: Settings, images: ContainerImages) -> dict[str, object]:
    """ApplyDefaults' defaults: every runtime setting, plus the container images resolved for this region (the
    endpoint's image is substituted at deploy: the project's image asset or the prebuilt one)."""
    return {
        **settings.runtime_values(),
        "tuningImage": images.tuning.uri,
        "trainingImage": images.training.uri,
        "inferenceImage": INFERENCE_IMAGE,
    }


class TrainingPipeline(Construct):
    """The tune-then-train-then-deploy state machine and the roles it and its SageMaker jobs run as."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        images: ContainerImages,
        serving: ServingImage,
        bucket: s3.IBucket,
        source: s3_assets.Asset,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        arns = Arns(self, settings)
        # The deployment state machine (stacks.lifecycle) by its name: it is created after this construct, whose
        # SageMaker role it passes to its models; the stack makes this state machine depend on it.
        self.deploy_state_machine_arn = Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=settings.deploy_state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        self.sagemaker_role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Runs the bincount tuning trials, training job, Debugger rules and endpoint model.",
        )
        sagemaker_policy = iam.Policy(self, "SageMakerAccess", roles=[self.sagemaker_role])
        source_object_arn = bucket.stack.format_arn(
            service="s3", region="", account="", resource=source.s3_bucket_name, resource_name=source.s3_object_key
        )
        public_bucket_arn = bucket.stack.format_arn(service="s3", region="", account="", resource=SOURCE_BUCKET)
        attach(
            sagemaker_policy,
            [
                *sagemaker_execution_permissions(
                    arns,
                    bucket_arn=bucket.bucket_arn,
                    repositories=[*(i.arn(arns) for i in images.all()), serving.repository_arn],
                    source_object_arn=source_object_arn,
                ),
                *scale.execution_permissions(bucket_arn=bucket.bucket_arn, public_bucket_arn=public_bucket_arn),
            ],
        )

        self.role = iam.Role(
            self,
            "StateMachineRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the bincount pipeline's states.",
        )
        policy = iam.Policy(self, "StateMachineAccess", roles=[self.role])
        attach(
            policy,
            [
                *state_machine_permissions(
                    arns,
                    bucket_arn=bucket.bucket_arn,
                    sagemaker_role_arn=self.sagemaker_role.role_arn,
                    topic_arn=topic.topic_arn,
                    model_package_group_arn=arns.sagemaker("model-package-group", settings.model_package_group_name),
                    model_versions_arn=arns.sagemaker("model-package", f"{settings.model_package_group_name}/*"),
                    deploy_state_machine_arn=self.deploy_state_machine_arn,
                    deploy_executions_arn=self._deploy_executions_arn(settings),
                ),
                *scale.state_machine_permissions(arns, bucket_arn=bucket.bucket_arn),
            ],
        )

        self.log_group = log_group(
            self,
            "Logs",
            name=f"/aws/vendedlogs/states/{settings.state_machine_name}",
            retention_days=settings.log_retention_days,
        )
        spec = PipelineSpec(
            name_prefix=settings.name_prefix,
            endpoint_name=settings.endpoint_name,
            region=settings.region,
            source_bucket=SOURCE_BUCKET,
            defaults=pipeline_defaults(settings, images),
            copy_concurrency=settings.copy_concurrency,
            model_package_group=settings.model_package_group_name,
            debugger_rules_image=images.debugger_rules.uri if images.debugger_rules else None,
        )
        self.definition = pipeline_definition(spec)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=settings.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(to_json(self.definition)),
            definition_substitutions={
                "DataBucket": bucket.bucket_name,
                "SageMakerRoleArn": self.sagemaker_role.role_arn,
                "NotificationTopicArn": topic.topic_arn,
                "TrainingSourceUrl": source.s3_object_url,
                "InferenceImage": serving.uri,
                "DeployStateMachineArn": self.deploy_state_machine_arn,
            },
            role=self.role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        self.state_machine.node.add_dependency(policy)
        # CDK adds the log delivery and X-Ray statements (Resource "*") to the role's default policy.
        suppress_wildcards(self.role, [NagWildcard("Resource", "*", "NoResourceLevelPermissions")])

    def _deploy_executions_arn(self, settings: Settings) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{settings.deploy_state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
