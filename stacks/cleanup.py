"""PipelineCleanup: a custom resource that makes ``cdk destroy`` remove what the pipeline created at run time.

CloudFormation does not know the endpoint, endpoint configs, models and jobs the state machine creates. This
custom resource depends on the state machines and the model package group, so on stack delete it goes first: its
handler (``stacks/cleanup_lambda/cleanup.py``) stops running executions and jobs, deregisters the endpoint's
autoscaling, deletes the endpoint, its configs, models and log group and the group's model versions, and only then do
the state machines, the group and the roles go.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from stacks.lifecycle import model_package_arns, scalable_targets
from stacks.log_groups import log_group
from stacks.nag import suppress
from stacks.permissions import Arns, Permission, attach
from stacks.pipeline.deploy import SCALABLE_DIMENSION
from stacks.pipeline.requests import VARIANT_NAME

HANDLER_DIR = Path(__file__).resolve().parent / "cleanup_lambda"
RESOURCE_TYPE = "Custom::PipelineCleanup"


def cleanup_permissions(
    arns: Arns,
    settings: Settings,
    *,
    deploy_state_machine_arn: str,
    deploy_executions_arn: str,
    scalable_targets_arn: str,
) -> list[Permission]:
    """Stop the pipeline's and deployments' executions and jobs; remove the endpoint's autoscaling; delete its
    endpoint, endpoint configs, models, endpoint logs and model versions."""
    prefix = settings.name_prefix
    _, model_versions = model_package_arns(arns, settings)
    return [
        Permission("ListExecutions", ["states:ListExecutions"], [arns.state_machine]),
        Permission("StopExecutions", ["states:StopExecution"], [arns.executions(":")], wildcard="PipelineExecutions"),
        Permission(
            "ListPipelineResources",
            [
                "sagemaker:ListHyperParameterTuningJobs",
                "sagemaker:ListTrainingJobs",
                "sagemaker:ListEndpointConfigs",
                "sagemaker:ListModels",
            ],
            ["*"],
            wildcard="NoResourceLevelPermissions",
        ),
        Permission(
            "StopTuningJobs",
            ["sagemaker:StopHyperParameterTuningJob"],
            [arns.named("hyper-parameter-tuning-job", "hpo")],
            wildcard="ExecutionNamedJobs",
        ),
        Permission(
            "StopTrainingJobs",
            ["sagemaker:StopTrainingJob"],
            [arns.sagemaker("training-job", f"{prefix}-*")],
            wildcard="TuningTrials",
        ),
        Permission("DeleteEndpoint", ["sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint"], [arns.endpoint]),
        Permission(
            "DeleteEndpointConfigsAndModels",
            ["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
            [arns.named("endpoint-config", "config"), arns.named("model", "model")],
            wildcard="ExecutionNamedJobs",
        ),
        Permission("ListDeployments", ["states:ListExecutions"], [deploy_state_machine_arn]),
        Permission("StopDeployments", ["states:StopExecution"], [deploy_executions_arn], wildcard="DeployExecutions"),
        Permission(
            "FindScalableTarget",
            ["application-autoscaling:DescribeScalableTargets"],
            ["*"],
            wildcard="NoResourceLevelPermissions",
        ),
        Permission(
            "RemoveAutoscaling",
            ["application-autoscaling:DeregisterScalableTarget"],
            [scalable_targets_arn],
            wildcard="AutoscalingTargets",
        ),
        Permission("DeleteModelVersions", ["sagemaker:DeleteModelPackage"], [model_versions], wildcard="ModelVersions"),
        Permission("ListModelVersions", ["sagemaker:ListModelPackages"], ["*"], wildcard="NoResourceLevelPermissions"),
        Permission(
            "DeleteEndpointLogs",
            ["logs:DeleteLogGroup"],
            [arns.log_groups(f"/aws/sagemaker/Endpoints/{settings.endpoint_name}")],
        ),
    ]


class PipelineCleanup(Construct):
    """The cleanup function and the custom resource that calls it on stack delete."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        state_machine: sfn.IStateMachine,
        deploy_state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        logs = log_group(self, "Logs", retention_days=settings.log_retention_days)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Removes the bincount pipeline's SageMaker resources when the stack is deleted.",
        )
        policy = iam.Policy(self, "Access", roles=[role])
        attach(
            policy,
            [
                Permission("WriteLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [logs.log_group_arn]),
                *cleanup_permissions(
                    Arns(self, settings),
                    settings,
                    deploy_state_machine_arn=deploy_state_machine.state_machine_arn,
                    deploy_executions_arn=Stack.of(self).format_arn(
                        service="states",
                        resource="execution",
                        resource_name=f"{settings.deploy_state_machine_name}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    ),
                    scalable_targets_arn=scalable_targets(Stack.of(self)),
                ),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Handler",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="cleanup.handler",
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.minutes(15),
            memory_size=256,
            role=role,
            log_group=logs,
            description=(
                "On stack delete: stop executions and jobs, remove autoscaling, delete the endpoint, configs, models "
                "and model versions."
            ),
        )
        self.function.node.add_dependency(policy)
        suppress(self.function, "PinnedRuntime")
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type=RESOURCE_TYPE,
            properties={
                "NamePrefix": settings.name_prefix,
                "EndpointName": settings.endpoint_name,
                "StateMachineArn": state_machine.state_machine_arn,
                "DeployStateMachineArn": deploy_state_machine.state_machine_arn,
                "ModelPackageGroupName": settings.model_package_group_name,
                "ScalableTargetId": f"endpoint/{settings.endpoint_name}/variant/{VARIANT_NAME}",
                "ScalableDimension": SCALABLE_DIMENSION,
            },
        )
