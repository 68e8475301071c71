"""IAM building blocks: one statement per :class:`Permission`, wildcards tied to their written reasons, and ARNs.

A statement whose resources or actions hold ``*`` must name the reason (a key of :data:`stacks.nag.WILDCARDS`);
:func:`attach` adds the statements to a policy and registers exactly those wildcards with cdk-nag. ARNs are
formatted for this stack's account and region and scoped to the ``<prefix>-`` names the state machine gives its
jobs (the way CDK's ``aws-stepfunctions-tasks`` constructs scope theirs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from bincount.manifest import SOURCE_BUCKET
from stacks.nag import NagWildcard, suppress_wildcards
from stacks.settings import Settings


@dataclass(frozen=True)
class Permission:
    """One IAM statement; ``wildcard`` names the reason when a resource or action holds ``*``."""

    sid: str
    actions: Sequence[str]
    resources: Sequence[str]
    wildcard: str | None = None
    conditions: dict[str, Any] = field(default_factory=dict)

    def wildcards(self) -> list[NagWildcard]:
        """The wildcard strings of this statement, for cdk-nag."""
        found = [NagWildcard("Action", a, self.wildcard or "") for a in self.actions if "*" in a]
        found += [NagWildcard("Resource", r, self.wildcard or "") for r in self.resources if "*" in r]
        if found and self.wildcard is None:
            raise ValueError(f"statement {self.sid} has wildcards {[w.value for w in found]} but no reason")
        return found

    def statement(self) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=self.sid,
            actions=list(self.actions),
            resources=list(self.resources),
            conditions=self.conditions or None,
        )


def attach(policy: iam.Policy, permissions: Iterable[Permission]) -> None:
    """Add the statements to ``policy`` and register their wildcards, with reasons, with cdk-nag."""
    permissions = list(permissions)
    wildcards = [w for p in permissions for w in p.wildcards()]
    for permission in permissions:
        policy.add_statements(permission.statement())
    if wildcards:
        suppress_wildcards(policy, wildcards)


class Arns:
    """Formatted ARNs of this stack's account and region."""

    def __init__(self, scope: Construct, settings: Settings) -> None:
        self._stack = Stack.of(scope)
        self._prefix = settings.name_prefix
        self.settings = settings

    def sagemaker(self, resource: str, name: str) -> str:
        # SageMaker ARNs carry names in lower case; our names are lower case already.
        return self._stack.format_arn(service="sagemaker", resource=resource, resource_name=name.lower())

    def named(self, resource: str, kind: str) -> str:
        """The ARN pattern of the ``<prefix>-<kind>-<run id>`` resources the executions create."""
        return self.sagemaker(resource, f"{self._prefix}-{kind}-*")

    @property
    def endpoint(self) -> str:
        return self.sagemaker("endpoint", self.settings.endpoint_name)

    @property
    def state_machine(self) -> str:
        return self._stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.settings.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def executions(self, separator: str) -> str:
        """Executions of the pipeline (``:``) or of its Distributed Map's child workflows (``/``)."""
        return self._stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.settings.state_machine_name}{separator}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def map_runs(self, label: str) -> str:
        """Runs of the pipeline's Distributed Map labelled ``label`` (``<state machine>/<label>:<map run id>``)."""
        return self._stack.format_arn(
            service="states",
            resource="mapRun",
            resource_name=f"{self.settings.state_machine_name}/{label}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def events_rule(self, name: str) -> str:
        return self._stack.format_arn(service="events", resource="rule", resource_name=name)

    def public_images(self) -> str:
        return self._stack.format_arn(
            service="s3", region="", account="", resource=SOURCE_BUCKET, resource_name="bin-images/*"
        )

    def ecr_repository(self, account: str, region: str, repository: str) -> str:
        return self._stack.format_arn(
            service="ecr", account=account, region=region, resource="repository", resource_name=repository
        )

    def log_groups(self, pattern: str) -> str:
        return self._stack.format_arn(
            service="logs", resource="log-group", resource_name=pattern, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
