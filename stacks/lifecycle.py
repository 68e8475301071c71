"""ModelLifecycle (docs/design.md §10): the model registry, the deployment state machine, its rollback alarms and the
EventBridge rules that act on a person's approval or rejection.

- ``<prefix>-models``: the model package group every trained model is registered in (emptied and deleted by
  ``cdk destroy``: the cleanup deletes its versions first, so a new deploy can create it again);
- ``<prefix>-deploy``: the deployment state machine (:mod:`stacks.pipeline.deploy`) and its role;
- rollback alarms on the endpoint's variant (5xx errors, model latency): blue/green updates roll back when one fires,
  and each notifies the topic;
- rule ``ApprovedByPerson``: a package of the group approved with ``approval: manual`` starts the deployment;
  rule ``RejectedByPerson``: such a package rejected notifies the topic.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from stacks.log_groups import log_group
from stacks.nag import NagWildcard, suppress_wildcards
from stacks.permissions import Arns, Permission, attach
from stacks.pipeline.asl import to_json
from stacks.pipeline.deploy import (
    DEPLOY_SETTINGS,
    SCALABLE_DIMENSION,
    DeploySpec,
    deploy_definition,
)
from stacks.pipeline.iam import SAGEMAKER_SERVICE
from stacks.pipeline.registry import APPROVAL_METADATA_KEY
from stacks.pipeline.requests import VARIANT_NAME

AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
MODEL_PACKAGE_EVENT = "SageMaker Model Package State Change"
# Rollback alarms: (id, metric, statistic, threshold, evaluation periods, what it means).
MODEL_LATENCY_THRESHOLD_US = 2_000_000  # SageMaker reports ModelLatency in microseconds: 2 s


def rollback_alarm_names(settings: Settings) -> tuple[str, ...]:
    """The alarms blue/green updates roll back on (names fixed so the definition can name them)."""
    return (f"{settings.name_prefix}-endpoint-5xx", f"{settings.name_prefix}-endpoint-model-latency")


def scalable_targets(stack: Stack) -> str:
    """Application Auto Scaling's scalable targets of this account and region (their ids are drawn at registration)."""
    return stack.format_arn(service="application-autoscaling", resource="scalable-target", resource_name="*")


def model_package_arns(arns: Arns, settings: Settings) -> tuple[str, str]:
    """(the group's ARN, the ARN pattern of its versions)."""
    group = settings.model_package_group_name
    return arns.sagemaker("model-package-group", group), arns.sagemaker("model-package", f"{group}/*")


def deployment_permissions(
    arns: Arns, settings: Settings, *, stack: Stack, sagemaker_role_arn: str, topic_arn: str
) -> list[Permission]:
    """Exactly what the deployment's states call (ListTags beside AddTags on what each call creates, as AWS's
    generated policies for these integrations grant)."""
    _, versions = model_package_arns(arns, settings)
    models = arns.named("model", "model")
    endpoint_configs = arns.named("endpoint-config", "config")
    return [
        Permission("DescribeModelPackages", ["sagemaker:DescribeModelPackage"], [versions], wildcard="ModelVersions"),
        Permission(
            "FindApprovedModelPackages", ["sagemaker:ListModelPackages"], ["*"], wildcard="NoResourceLevelPermissions"
        ),
        Permission(
            "CreateModels",
            ["sagemaker:CreateModel", "sagemaker:AddTags", "sagemaker:ListTags"],
            [models],
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "CreateEndpointConfigs",
            ["sagemaker:CreateEndpointConfig", "sagemaker:AddTags", "sagemaker:ListTags"],
            [endpoint_configs],
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "DeployEndpoint",
            ["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:AddTags", "sagemaker:ListTags"],
            [arns.endpoint, endpoint_configs],
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "WatchEndpoint",
            [
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:UpdateEndpointWeightsAndCapacities",
            ],
            [arns.endpoint, endpoint_configs],
            wildcard="ExecutionNamedJobs",
        ),
        Permission("FindEndpoint", ["sagemaker:ListEndpoints"], ["*"], wildcard="NoResourceLevelPermissions"),
        Permission(
            "PassSageMakerRole",
            ["iam:PassRole"],
            [sagemaker_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
        ),
        # Autoscaling of the endpoint's variant: Application Auto Scaling names its targets at run time and creates
        # the target-tracking alarms with the caller's permissions.
        Permission(
            "ScaleEndpoint",
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
            ],
            [scalable_targets(stack)],
            wildcard="AutoscalingTargets",
        ),
        Permission(
            "FindScalableTarget",
            ["application-autoscaling:DescribeScalableTargets"],
            ["*"],
            wildcard="NoResourceLevelPermissions",
        ),
        Permission(
            "TargetTrackingAlarms",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
            [
                stack.format_arn(
                    service="cloudwatch",
                    resource="alarm",
                    resource_name=f"TargetTracking-endpoint/{settings.endpoint_name}/variant/{VARIANT_NAME}-*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            wildcard="AutoscalingTargets",
        ),
        Permission("ReadAlarms", ["cloudwatch:DescribeAlarms"], ["*"], wildcard="NoResourceLevelPermissions"),
        Permission(
            "CreateAutoscalingRole",
            ["iam:CreateServiceLinkedRole"],
            [
                stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=f"aws-service-role/{AUTOSCALING_SERVICE}/{AUTOSCALING_ROLE}",
                )
            ],
            conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
        ),
        Permission("Notify", ["sns:Publish"], [topic_arn]),
    ]


class ModelLifecycle(Construct):
    """Model package group, deployment state machine, rollback alarms, approval rules."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: s3.IBucket,
        topic: sns.ITopic,
        sagemaker_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        arns = Arns(self, settings)
        self.settings = settings
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=settings.model_package_group_name,
            model_package_group_description=(
                f"Every model the {settings.name_prefix} pipeline trained, approved, rejected (with the cause) or "
                "waiting for a person."
            ),
        )
        self.alarms = self._rollback_alarms(settings, topic)

        self.role = iam.Role(
            self,
            "DeployRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="Runs the bincount deployment's states.",
        )
        policy = iam.Policy(self, "DeployAccess", roles=[self.role])
        attach(
            policy,
            deployment_permissions(
                arns,
                settings,
                stack=Stack.of(self),
                sagemaker_role_arn=sagemaker_role.role_arn,
                topic_arn=topic.topic_arn,
            ),
        )
        self.log_group = log_group(
            self,
            "DeployLogs",
            name=f"/aws/vendedlogs/states/{settings.deploy_state_machine_name}",
            retention_days=settings.log_retention_days,
        )
        self.spec = DeploySpec(
            name_prefix=settings.name_prefix,
            endpoint_name=settings.endpoint_name,
            region=settings.region,
            model_package_group=settings.model_package_group_name,
            defaults={**{key: settings.value(key) for key in DEPLOY_SETTINGS}, "notify": True},
            rollback_alarms=rollback_alarm_names(settings),
            bake_minutes=settings.bake_minutes,
        )
        self.definition = deploy_definition(self.spec)
        _, versions = model_package_arns(arns, settings)
        self.state_machine = sfn.StateMachine(
            self,
            "DeployStateMachine",
            state_machine_name=settings.deploy_state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(to_json(self.definition)),
            definition_substitutions={
                "DataBucket": bucket.bucket_name,
                "SageMakerRoleArn": sagemaker_role.role_arn,
                "NotificationTopicArn": topic.topic_arn,
                "ModelPackageArnPrefix": versions.removesuffix("*"),
            },
            role=self.role,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        self.state_machine.node.add_dependency(policy)
        suppress_wildcards(self.role, [NagWildcard("Resource", "*", "NoResourceLevelPermissions")])
        self._approval_rules(settings, topic)

    def _rollback_alarms(self, settings: Settings, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        dimensions = {"EndpointName": settings.endpoint_name, "VariantName": VARIANT_NAME}
        errors_name, latency_name = rollback_alarm_names(settings)
        alarms = [
            cloudwatch.Alarm(
                self,
                "Endpoint5xxAlarm",
                alarm_name=errors_name,
                alarm_description="The endpoint answered 5xx (model errors): blue/green updates roll back on it.",
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation5XXErrors",
                    dimensions_map=dimensions,
                    statistic="Sum",
                    period=Duration.minutes(1),
                ),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "EndpointLatencyAlarm",
                alarm_name=latency_name,
                alarm_description=(
                    "The model's p90 latency stayed above 2 s for 3 minutes: blue/green updates roll back on it."
                ),
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="ModelLatency",
                    dimensions_map=dimensions,
                    statistic="p90",
                    period=Duration.minutes(1),
                ),
                threshold=MODEL_LATENCY_THRESHOLD_US,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarms

    def _approval_rules(self, settings: Settings, topic: sns.ITopic) -> None:
        def pattern(status: str) -> events.EventPattern:
            return events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[MODEL_PACKAGE_EVENT],
                detail={
                    "ModelPackageGroupName": [settings.model_package_group_name],
                    "ModelApprovalStatus": [status],
                    "CustomerMetadataProperties": {APPROVAL_METADATA_KEY: ["manual"]},
                },
            )

        self.approved_rule = events.Rule(
            self,
            "ApprovedByPerson",
            description="A person approved a model package (approval manual): deploy it.",
            event_pattern=pattern("Approved"),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object(
                        {"modelPackageArn": events.EventField.from_path("$.detail.ModelPackageArn")}
                    ),
                )
            ],
        )
        self.rejected_rule = events.Rule(
            self,
            "RejectedByPerson",
            description="A person rejected a model package (approval manual): notify.",
            event_pattern=pattern("Rejected"),
            targets=[
                targets.SnsTopic(
                    topic,
                    message=events.RuleTargetInput.from_object(
                        {
                            "status": "REJECTED",
                            "modelPackageArn": events.EventField.from_path("$.detail.ModelPackageArn"),
                            "approvalDescription": events.EventField.from_path("$.detail.ApprovalDescription"),
                            "note": "Rejected in the model registry: nothing was deployed, the endpoint is unchanged.",
                        }
                    ),
                )
            ],
        )

    @property
    def scalable_target_id(self) -> str:
        return self.spec.resource_id

    @property
    def scalable_dimension(self) -> str:
        return SCALABLE_DIMENSION
