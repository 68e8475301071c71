"""BincountStack: the whole system in one stack, composed of the constructs in this package."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from bincount.cloud.settings import Settings
from stacks.batch.construct import BatchCounting
from stacks.cleanup import PipelineCleanup
from stacks.endpoint_image import serving_image
from stacks.images import ContainerImages, resolve_images
from stacks.lifecycle import ModelLifecycle
from stacks.monitoring import ServingMonitoring
from stacks.nag import suppress_cdk_helpers
from stacks.notifications import PipelineNotifications
from stacks.pipeline.construct import TrainingPipeline
from stacks.serving import CountApi
from stacks.source_bundle import training_source_asset
from stacks.storage import DataStorage


class BincountStack(Stack):
    """Storage, the training pipeline, notifications, the API, and the cleanup that runs on ``cdk destroy``."""

    def __init__(self, scope: Construct, *, settings: Settings, images: ContainerImages | None = None) -> None:
        super().__init__(
            scope,
            settings.stack_name,
            env=Environment(account=settings.account, region=settings.region),
            description="bincount: count objects in Amazon Bin Image Dataset photos (SageMaker + Step Functions + API)",
        )
        self.settings = settings
        self.images = images or resolve_images(settings)
        self.storage = DataStorage(self, "Storage", max_images_per_count=settings.max_images_per_count)
        self.notifications = PipelineNotifications(self, "Notifications", email=settings.notification_email)
        self.training_source = training_source_asset(self, "TrainingSource")
        self.serving_image = serving_image(self, "EndpointImage", settings=settings, images=self.images)
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            settings=settings,
            images=self.images,
            serving=self.serving_image,
            bucket=self.storage.bucket,
            source=self.training_source,
            topic=self.notifications.topic,
        )
        self.lifecycle = ModelLifecycle(
            self,
            "Lifecycle",
            settings=settings,
            bucket=self.storage.bucket,
            topic=self.notifications.topic,
            sagemaker_role=self.pipeline.sagemaker_role,
        )
        self.pipeline.state_machine.node.add_dependency(self.lifecycle.state_machine)
        self.batch = BatchCounting(
            self,
            "BatchCounting",
            settings=settings,
            bucket=self.storage.bucket,
            topic=self.notifications.topic,
            model_role=self.pipeline.sagemaker_role,
        )
        self.serving = CountApi(self, "Serving", settings=settings)
        self.monitoring = ServingMonitoring(
            self,
            "Monitoring",
            settings=settings,
            api=self.serving.api,
            function=self.serving.function,
            state_machines=[self.pipeline.state_machine, self.lifecycle.state_machine],
            topic=self.notifications.topic,
            endpoint_alarms=self.lifecycle.alarms,
        )
        self.cleanup = PipelineCleanup(
            self,
            "Cleanup",
            settings=settings,
            state_machine=self.pipeline.state_machine,
            deploy_state_machine=self.lifecycle.state_machine,
        )
        self.cleanup.node.add_dependency(self.lifecycle.model_package_group)
        suppress_cdk_helpers(self)
        self._outputs()

    def _outputs(self) -> None:
        region = self.settings.region
        state_machine_arn = self.pipeline.state_machine.state_machine_arn
        api_key_id = self.serving.api_key.key_id
        outputs = {
            "ApiUrl": (self.serving.api.url, "Base URL of the API: POST <ApiUrl>count, GET <ApiUrl>health."),
            "ApiKeyId": (api_key_id, "Id of the API key (send its value in x-api-key)."),
            "ApiKeyValueCommand": (
                f"aws apigateway get-api-key --api-key {api_key_id} --include-value --query value --output text "
                f"--region {region}",
                "Prints the API key's value.",
            ),
            "StateMachineArn": (state_machine_arn, "The training pipeline."),
            "StateMachineConsoleUrl": (
                f"https://{region}.console.aws.amazon.com/states/home?region={region}#/statemachines/view/"
                f"{state_machine_arn}",
                "Open it and choose Start execution (input {} runs with the defaults).",
            ),
            "StartExecutionCommand": (
                f"aws stepfunctions start-execution --state-machine-arn {state_machine_arn} --input '{{}}' "
                f"--region {region}",
                "Starts the pipeline with the default settings.",
            ),
            "BatchStateMachineArn": (
                self.batch.state_machine.state_machine_arn,
                'Counts a shift: input {"input": "s3://<bucket>/<prefix>/", "expected": "s3://<bucket>/<key>.csv"}.',
            ),
            "DeployStateMachineArn": (
                self.lifecycle.state_machine.state_machine_arn,
                'Deploys an approved model version: input {"modelPackageVersion": N} (bincount deploy --version N).',
            ),
            "ModelPackageGroupName": (
                self.settings.model_package_group_name,
                "The model registry's group: every trained model, approved, rejected or pending.",
            ),
            "DashboardUrl": (self.monitoring.url, "CloudWatch dashboard of the API, endpoint and pipelines."),
            "BucketName": (self.storage.bucket.bucket_name, "Dataset, manifest, job outputs and captured requests."),
            "EndpointName": (self.settings.endpoint_name, "The SageMaker endpoint the pipeline deploys."),
            "NotificationTopicArn": (self.notifications.topic.topic_arn, "Pipeline success and failure notices."),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
