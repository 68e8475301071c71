"""cdk-nag (AwsSolutions) on every synth, and every suppression with its reason, in one place.

Two kinds of suppressions:

- :data:`WILDCARDS`: why an IAM statement of ours needs ``*`` (AwsSolutions-IAM5). :func:`suppress_wildcards`
  turns the exact resource or action strings of a statement into ``appliesTo`` patterns, so a new wildcard that
  has no reason here still fails the synth's nag check.
- :data:`FINDINGS`: other rules, each suppressed only on the resources that need it, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import Aspects, Stack
from cdk_nag import AwsSolutionsChecks, NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

# Why each wildcard an IAM statement of ours holds is needed, by key; every Permission with a wildcard names one.
WILDCARDS: dict[str, str] = {
    "PublicImages": "PrepareDataset copies any image of the dataset subset from the public ABID bucket: read access "
    "to its bin-images/ prefix only, object names come from the manifest.",
    "DatasetObjects": "PrepareDataset writes one object per image under the channel prefixes (train/, valid/, "
    "test/); names come from the manifest.",
    "MapRunResults": "The Distributed Map writes its results under map-runs/<map run id>/, named at run time.",
    "JobOutputs": "SageMaker jobs write outputs, Debugger and Profiler data under jobs/ and checkpoints/, in "
    "folders named after each job, which the execution names.",
    "FullDataset": "With dataset: full, BuildFullManifest reads every metadata/ object of the public ABID bucket and "
    "copies the bin-images/ photos it keeps into full/ of the data bucket, where the jobs read them; names come from "
    "the public bucket's listing.",
    "ChannelReads": "Training jobs read every image of their channels (train/, valid/, test/).",
    "ExecutionNamedJobs": "Each execution names its jobs, models and endpoint configs <prefix>-<kind>-<run id>; "
    "the run id is drawn at run time, so the ARN ends in a wildcard after the fixed prefix.",
    "TuningTrials": "A tuning job names its trials <tuning job>-<nnn>-<hash>; Step Functions' .sync integration "
    "and the cleanup stop them by that prefix.",
    "MapRuns": "CountCopiedImages describes the Distributed Map's run, whose id is drawn at run time.",
    "MapChildExecutions": "Distributed Map child executions are named at run time under the state machine's own "
    "execution namespace; .sync describes and stops them.",
    "SageMakerLogs": "SageMaker creates its log groups (/aws/sagemaker/TrainingJobs, ProcessingJobs, "
    "Endpoints/<name>) and one log stream per job or instance, named at run time.",
    "NoResourceLevelPermissions": "These actions do not support resource-level permissions (IAM requires "
    "Resource *): ecr:GetAuthorizationToken, cloudwatch:PutMetricData (limited by a namespace condition), "
    "sagemaker:List*, application-autoscaling:Describe*, cloudwatch:DescribeAlarms, X-Ray and CloudWatch Logs "
    "delivery.",
    "ModelVersions": "Model package versions are numbered by SageMaker as they are registered "
    "(model-package/<group>/<version>): every version of the stack's own group.",
    "AutoscalingTargets": "Application Auto Scaling names scalable targets and their target-tracking alarms at run "
    "time (the alarms TargetTracking-endpoint/<endpoint>/variant/AllTraffic-*); its actions take no other resource.",
    "DeployExecutions": "The pipeline waits for (.sync:2), and the cleanup stops, deployment executions, whose "
    "names are drawn per execution.",
    "CapturedRequests": "The endpoint writes captured requests and responses under capture/<endpoint>/<variant>/"
    "<date>/<hour>/, one object per batch named by SageMaker.",
    "PipelineExecutions": "The cleanup stops whichever executions of the pipeline are running at destroy time; "
    "their names are drawn per execution.",
    "BatchInputs": "The Batch state machine counts the photos under whichever prefix of the data bucket (or of a "
    "bucket the user listed in batchInputBuckets) its execution names; read-only.",
    "BatchOutputs": "Each Batch execution writes its transform output, counts.csv and summary.json under "
    "batch-output/<job name>/, named at run time.",
}


@dataclass(frozen=True)
class Finding:
    """A cdk-nag finding we accept: the rule, the exact findings (``appliesTo``; None: the rule as a whole on the
    resource, for rules without sub-findings) and the reason."""

    rule_id: str
    reason: str
    applies_to: tuple[str, ...] | None = None


_CDK_HELPER = "CDK's BucketDeployment helper function (it uploads the manifest)"
# Findings we accept, by name; suppress() applies them to the constructs that need them.
FINDINGS: dict[str, Finding] = {
    "PinnedRuntime": Finding(
        "AwsSolutions-L1",
        "The API and cleanup functions run python3.12, the runtime the API handler is written and tested for (one "
        "runtime for the app's functions); CDK's BucketDeployment helper pins its own runtime.",
    ),
    "NoWaf": Finding(
        "AwsSolutions-APIG3",
        "No WAF: the API is protected by an API key, a usage plan (rate, burst, daily quota) and request "
        "validation; a WAF web ACL would cost more than the ml.t2.medium endpoint it protects.",
    ),
    "NoBodyModel": Finding(
        "AwsSolutions-APIG2",
        "The request validator checks what API Gateway can check, the required Content-Type header; the body is a "
        "raw JPEG or PNG, which no request model describes (body validation without a model is skipped), so the "
        "Lambda checks it (type, magic bytes, size) before calling the endpoint.",
    ),
    "ApiKeyCallers": Finding(
        "AwsSolutions-APIG4",
        "Callers are machines holding an API key (x-api-key); there are no end users to authorise, so no IAM or "
        "Cognito authorizer.",
    ),
    "NoUserPool": Finding(
        "AwsSolutions-COG4", "No Cognito user pool: the API authenticates callers by API key (see APIG4)."
    ),
    "ApiGatewayLogsRole": Finding(
        "AwsSolutions-IAM4",
        "API Gateway's account-wide CloudWatch role (needed for access and execution logs) uses the AWS managed "
        "policy made for it; CDK creates the role.",
        ("Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",),
    ),
    "CdkHelperManagedPolicy": Finding(
        "AwsSolutions-IAM4",
        f"{_CDK_HELPER} logs through the AWS managed AWSLambdaBasicExecutionRole policy; CDK creates its role.",
        ("Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",),
    ),
    "CdkHelperBucketAccess": Finding(
        "AwsSolutions-IAM5",
        f"{_CDK_HELPER} reads its source from the CDK asset bucket and replaces the manifests/ objects of the data "
        "bucket; CDK grants it object-level wildcards on both.",
        (
            "Action::s3:GetObject*",
            "Action::s3:GetBucket*",
            "Action::s3:List*",
            "Action::s3:DeleteObject*",
            "Action::s3:Abort*",
            "/^Resource::arn:<AWS::Partition>:s3:::cdk-[a-z0-9]+-assets-<AWS::AccountId>-[a-z0-9-]+\\/\\*$/",
            "/^Resource::<StorageDataBucket[A-F0-9]+\\.Arn>\\/\\*$/",
        ),
    ),
}

_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")


@dataclass(frozen=True)
class NagWildcard:
    """One wildcard string (resource ARN or action) of a statement, and the key of its reason."""

    kind: str  # "Resource" or "Action"
    value: str
    reason_key: str

    def applies_to(self) -> RegexAppliesTo:
        """cdk-nag's ``appliesTo`` pattern: the literal parts exact, CDK tokens (logical ids, partition) free."""
        parts = _TOKEN.split(self.value)
        return RegexAppliesTo(regex=f"/^{self.kind}::{'.*'.join(re.escape(part) for part in parts)}$/")


def suppress_wildcards(construct: IConstruct, wildcards: Iterable[NagWildcard]) -> None:
    """Suppress AwsSolutions-IAM5 on ``construct`` for exactly these wildcards, one suppression per reason."""
    by_reason: dict[str, list[RegexAppliesTo]] = {}
    for wildcard in wildcards:
        if wildcard.reason_key not in WILDCARDS:
            raise KeyError(f"no written reason for wildcard {wildcard.value!r} ({wildcard.reason_key!r})")
        by_reason.setdefault(wildcard.reason_key, []).append(wildcard.applies_to())
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(id="AwsSolutions-IAM5", reason=WILDCARDS[key], applies_to=patterns)
            for key, patterns in sorted(by_reason.items())
        ],
        apply_to_children=True,
    )


def _applies_to(patterns: tuple[str, ...] | None) -> list[str | RegexAppliesTo] | None:
    if patterns is None:
        return None
    return [RegexAppliesTo(regex=p) if p.startswith("/") else p for p in patterns]


def suppress(construct: IConstruct | None, *finding_names: str) -> None:
    """Suppress the named :data:`FINDINGS` on ``construct`` and its children, with their reasons.

    Raises:
        ValueError: no construct (a child that CDK no longer creates under that id): nothing would be suppressed.
    """
    if construct is None:
        raise ValueError(f"no construct to suppress {', '.join(finding_names)} on")
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(id=f.rule_id, reason=f.reason, applies_to=_applies_to(f.applies_to))
            for f in (FINDINGS[name] for name in finding_names)
        ],
        apply_to_children=True,
    )


def suppress_cdk_helpers(stack: Stack) -> None:
    """Suppress the accepted findings on CDK's BucketDeployment helper function.

    CDK creates it as a singleton at the stack root under a fixed id, so it is found by that id's prefix.
    """
    for child in stack.node.children:
        if child.node.id.startswith("Custom::CDKBucketDeployment"):
            suppress(child.node.default_child, "PinnedRuntime")
            suppress(child.node.find_child("ServiceRole"), "CdkHelperManagedPolicy", "CdkHelperBucketAccess")


def enable_checks(scope: IConstruct) -> None:
    """Run the AwsSolutions pack on every synth of ``scope`` (findings become synth errors and warnings)."""
    Aspects.of(scope).add(AwsSolutionsChecks(verbose=True))
