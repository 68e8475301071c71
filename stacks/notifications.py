"""PipelineNotifications: the SNS topic the state machines, the alarms and the approval rules report to, and an
optional e-mail."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

# Services that publish to the topic without an IAM role of ours: they need the key's permission to encrypt.
PUBLISHING_SERVICES: tuple[str, ...] = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class PipelineNotifications(Construct):
    """An encrypted, SSL-only topic, with the configured e-mail subscribed when there is one.

    The key is the stack's own (rotated, deleted with the stack after the 7-day waiting period): CloudWatch alarms
    and EventBridge rules cannot publish to a topic under the AWS managed ``aws/sns`` key, whose policy cannot grant
    them its use.
    """

    def __init__(self, scope: Construct, construct_id: str, *, email: str) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the bincount notifications topic.",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsAndRulesPublish",
                principals=[iam.ServicePrincipal(service) for service in PUBLISHING_SERVICES],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="bincount pipeline",
            master_key=self.key,
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
