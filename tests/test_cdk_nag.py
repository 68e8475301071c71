"""cdk-nag AwsSolutions: no unsuppressed finding, every suppression exact and reasoned, new wildcards still caught."""

from __future__ import annotations

import csv
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match

from stacks.nag import FINDINGS, WILDCARDS, NagWildcard, enable_checks
from stacks.permissions import Permission, attach
from tests.test_cdk_support import Synthesized, synthesized

NAG_FINDING = Match.string_like_regexp(r"AwsSolutions-.*")


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


def test_no_unsuppressed_findings(synth: Synthesized) -> None:
    annotations = Annotations.from_stack(synth.stack)
    found = annotations.find_error("*", NAG_FINDING) + annotations.find_warning("*", NAG_FINDING)
    assert [f"{m.id}: {m.entry.data}"[:300] for m in found] == []


def test_the_report_lists_suppressions_and_nothing_non_compliant(synth: Synthesized) -> None:
    (report,) = synth.outdir.glob(f"AwsSolutions-*{synth.stack.stack_name}-NagReport.csv")
    with open(report, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "cdk-nag ran and wrote its report"
    assert {r["Compliance"] for r in rows} <= {"Compliant", "Suppressed"}
    suppressed = {r["Rule ID"] for r in rows if r["Compliance"] == "Suppressed"}
    assert suppressed == {
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
        "AwsSolutions-APIG2",
        "AwsSolutions-APIG3",
        "AwsSolutions-APIG4",
        "AwsSolutions-COG4",
    }
    assert all(r["Exception Reason"] not in ("", "N/A") for r in rows if r["Compliance"] == "Suppressed")


def _suppressions(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, rule)
        for logical_id, resource in synth.template_json["Resources"].items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]


def test_every_suppression_names_the_exact_finding_and_a_written_reason(synth: Synthesized) -> None:
    suppressions = _suppressions(synth)
    reasons = set(WILDCARDS.values()) | {f.reason for f in FINDINGS.values()}
    for logical_id, rule in suppressions:
        assert rule["reason"] in reasons, (logical_id, rule)
        if rule["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
            assert rule.get("applies_to"), f"{logical_id}: {rule['id']} must say which finding it accepts"
    # Rules without sub-findings are suppressed only where they apply.
    by_rule: dict[str, set[str]] = {}
    for logical_id, rule in suppressions:
        by_rule.setdefault(rule["id"], set()).add(logical_id)
    methods = set(synth.resources("AWS::ApiGateway::Method"))
    assert by_rule["AwsSolutions-APIG4"] == by_rule["AwsSolutions-COG4"] == methods
    assert by_rule["AwsSolutions-APIG3"] == set(synth.resources("AWS::ApiGateway::Stage"))
    assert by_rule["AwsSolutions-APIG2"] == set(synth.resources("AWS::ApiGateway::RestApi"))
    functions = synth.resources("AWS::Lambda::Function")
    assert by_rule["AwsSolutions-L1"] == {i for i, f in functions.items() if f["Properties"]["Runtime"] != "nodejs24.x"}


def test_every_wildcard_reason_is_used(synth: Synthesized) -> None:
    used = {rule["reason"] for _, rule in _suppressions(synth)}
    assert set(WILDCARDS.values()) <= used
    assert {f.reason for f in FINDINGS.values()} <= used


def test_a_wildcard_without_a_reason_fails_at_synth() -> None:
    with pytest.raises(ValueError, match="no reason"):
        Permission("Broad", ["s3:GetObject"], ["arn:aws:s3:::bucket/*"]).wildcards()
    with pytest.raises(KeyError, match="no written reason"):
        attach(
            iam.Policy(Stack(App(), "Reasonless"), "Policy"),
            [Permission("Broad", ["s3:GetObject"], ["arn:aws:s3:::bucket/*"], wildcard="NoSuchReason")],
        )


def test_suppressions_accept_only_the_wildcards_they_name() -> None:
    # A reasoned wildcard is accepted; a second wildcard added to the same policy without a reason is reported.
    app = App()
    stack = Stack(app, "Probe")
    policy = iam.Policy(stack, "Policy", roles=[iam.Role(stack, "Role", assumed_by=iam.AccountRootPrincipal())])
    attach(policy, [Permission("Reasoned", ["s3:GetObject"], ["arn:aws:s3:::data/train/*"], wildcard="ChannelReads")])
    policy.add_statements(iam.PolicyStatement(actions=["s3:PutObject"], resources=["arn:aws:s3:::data/other/*"]))
    enable_checks(app)
    app.synth()
    found = [str(m.entry.data) for m in Annotations.from_stack(stack).find_error("*", NAG_FINDING)]
    assert len(found) == 1 and "AwsSolutions-IAM5[Resource::arn:aws:s3:::data/other/*]" in found[0]


def test_wildcard_patterns_keep_literal_parts_exact() -> None:
    pattern = NagWildcard("Resource", "arn:${Token[AWS.Partition.8]}:s3:::aft-vbi-pds/bin-images/*", "x").applies_to()
    assert pattern.regex == r"/^Resource::arn:.*:s3:::aft\-vbi\-pds/bin\-images/\*$/"
