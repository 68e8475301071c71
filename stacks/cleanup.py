"""PipelineCleanup: a custom resource that makes ``cdk destroy`` remove what the pipeline created at run time.

CloudFormation does not know the endpoint, endpoint configs, models and jobs the state machine creates. This
custom resource depends on the state machine, so on stack delete it goes first: its handler
(``stacks/cleanup_lambda/cleanup.py``) stops running executions and jobs and deletes the endpoint, its configs,
models and log group, and only then do the state machine and the roles go.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from stacks.log_groups import log_group
from stacks.nag import suppress
from stacks.permissions import Arns, Permission, attach

HANDLER_DIR = Path(__file__).resolve().parent / "cleanup_lambda"
RESOURCE_TYPE = "Custom::PipelineCleanup"


def cleanup_permissions(arns: Arns, settings: Settings) -> list[Permission]:
    """Stop the pipeline's executions and jobs; delete its endpoint, endpoint configs, models and endpoint logs."""
    prefix = settings.name_prefix
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
        Permission(
            "DeleteEndpointLogs",
            ["logs:DeleteLogGroup"],
            [arns.log_groups(f"/aws/sagemaker/Endpoints/{settings.endpoint_name}")],
        ),
    ]


class PipelineCleanup(Construct):
    """The cleanup function and the custom resource that calls it on stack delete."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: Settings, state_machine: sfn.IStateMachine
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
                *cleanup_permissions(Arns(self, settings), settings),
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
            description="On stack delete: stop pipeline executions and jobs, delete the endpoint, configs, models.",
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
            },
        )
