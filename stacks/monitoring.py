"""ServingMonitoring: the CloudWatch dashboard of the whole system and the serving path's alarms.

Dashboard ``<prefix>``: API requests, 4xx/5xx and latency; the Lambda's errors and duration; the endpoint's
invocations, latency, errors, CPU and memory and instance count; both state machines' executions succeeded/failed;
the alarms. Alarms on the API (5xx) and the Lambda (errors) notify the topic, as the endpoint's rollback alarms
(:mod:`stacks.lifecycle`) do.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bincount.cloud.settings import Settings
from stacks.pipeline.requests import VARIANT_NAME

PERIOD = Duration.minutes(1)
WIDTH = 8  # three widgets a row (the grid is 24 wide)


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"


class ServingMonitoring(Construct):
    """Dashboard and serving alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        api: apigw.RestApi,
        function: lambda_.IFunction,
        state_machines: Sequence[sfn.IStateMachine],
        topic: sns.ITopic,
        endpoint_alarms: Sequence[cloudwatch.IAlarm] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard_name = settings.name_prefix
        self.url = dashboard_url(settings.region, self.dashboard_name)
        self.alarms = self._serving_alarms(api, function, topic)
        endpoint = {"EndpointName": settings.endpoint_name, "VariantName": VARIANT_NAME}

        def sagemaker(metric: str, statistic: str, namespace: str = "AWS/SageMaker") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=metric, dimensions_map=endpoint, statistic=statistic, period=PERIOD
            )

        def graph(
            title: str, left: Sequence[cloudwatch.IMetric], right: Sequence[cloudwatch.IMetric] = ()
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(left), right=list(right), width=WIDTH)

        instances = "/aws/sagemaker/Endpoints"
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self.dashboard_name,
            default_interval=Duration.hours(3),
            widgets=[
                [
                    graph("API requests", [api.metric_count(period=PERIOD)]),
                    graph(
                        "API errors",
                        [api.metric_client_error(period=PERIOD), api.metric_server_error(period=PERIOD)],
                    ),
                    graph(
                        "API latency (ms)",
                        [api.metric_latency(period=PERIOD, statistic="p50"), api.metric_latency(period=PERIOD)],
                        [api.metric_integration_latency(period=PERIOD, statistic="p90")],
                    ),
                ],
                [
                    graph("Lambda errors", [function.metric_errors(period=PERIOD), function.metric_throttles()]),
                    graph(
                        "Lambda duration (ms)",
                        [function.metric_duration(period=PERIOD, statistic="p50"), function.metric_duration()],
                    ),
                    graph("Endpoint invocations", [sagemaker("Invocations", "Sum")]),
                ],
                [
                    graph(
                        "Endpoint latency (µs)",
                        [sagemaker("ModelLatency", "p50"), sagemaker("ModelLatency", "p90")],
                        [sagemaker("OverheadLatency", "p90")],
                    ),
                    graph(
                        "Endpoint errors",
                        [
                            sagemaker("Invocation4XXErrors", "Sum"),
                            sagemaker("Invocation5XXErrors", "Sum"),
                            sagemaker("InvocationModelErrors", "Sum"),
                        ],
                    ),
                    graph(
                        "Endpoint CPU and memory (%)",
                        [
                            sagemaker("CPUUtilization", "Average", instances),
                            sagemaker("MemoryUtilization", "Average", instances),
                        ],
                    ),
                ],
                [
                    graph(
                        "Endpoint instances",
                        [sagemaker("InvocationsPerInstance", "Sum")],
                        [
                            cloudwatch.MathExpression(
                                expression="m1",
                                using_metrics={"m1": sagemaker("CPUUtilization", "SampleCount", instances)},
                                label="instances reporting",
                                period=PERIOD,
                            )
                        ],
                    ),
                    graph(
                        "Executions",
                        [
                            m
                            for machine in state_machines
                            for m in (
                                machine.metric_succeeded(period=Duration.hours(1)),
                                machine.metric_failed(period=Duration.hours(1)),
                            )
                        ],
                    ),
                    cloudwatch.AlarmStatusWidget(title="Alarms", alarms=[*self.alarms, *endpoint_alarms], width=WIDTH),
                ],
            ],
        )

    def _serving_alarms(
        self, api: apigw.RestApi, function: lambda_.IFunction, topic: sns.ITopic
    ) -> list[cloudwatch.Alarm]:
        alarms = [
            api.metric_server_error(period=Duration.minutes(5)).create_alarm(
                self,
                "Api5xxAlarm",
                alarm_description="The API answered 5xx (502 model errors, 503 endpoint unavailable) 5 times in 5 min.",
                threshold=5,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            function.metric_errors(period=Duration.minutes(5)).create_alarm(
                self,
                "LambdaErrorsAlarm",
                alarm_description="The API's Lambda failed (uncaught errors or timeouts).",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarms
