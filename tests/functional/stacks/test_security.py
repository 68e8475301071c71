"""Security invariants of the synthesized template, checked generically (issue 7): they hold for every resource of
the kind, including ones added later, where tests/functional/stacks/test_template.py pins the ones that exist today.

- IAM: no statement allows every action (``*``) or every action of a service (``svc:*``); every ``*`` in an action
  or resource is accepted by a cdk-nag suppression on that very policy whose reason is written in
  :mod:`stacks.nag` (the one place).
- Buckets: encrypted, public access blocked, plain HTTP denied. API: every method needs the key and validates its
  request, the stage and the usage plan throttle. No secrets in the template, its outputs or the repository; the
  Lambda never logs the API key.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from typing import Any

import pytest

from bincount.local.api import load_lambda_module
from stacks.nag import FINDINGS, WILDCARDS
from tests.support.cdk import ROOT, Synthesized, synthesized
from tests.support.serving import rest_event

REASONS = set(WILDCARDS.values()) | {f.reason for f in FINDINGS.values()}


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


def nag_render(value: Any) -> str:
    """A CloudFormation value as cdk-nag writes it in ``appliesTo`` (``<Logical.Arn>/train/*``)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(nag_render(p) for p in parts)
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
    return json.dumps(value)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """(logical id, policy document) of every IAM policy, role inline policy and managed policy in the template."""
    found = []
    for logical_id, resource in synth.template_json["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found.append((logical_id, properties["PolicyDocument"]))
        elif resource["Type"] == "AWS::IAM::Role":
            found += [(logical_id, p["PolicyDocument"]) for p in properties.get("Policies", [])]
    return found


def accepted(synth: Synthesized, logical_id: str, finding: str) -> list[str]:
    """The reasons of the IAM5 suppressions on a resource that accept ``finding`` (``Resource::...``)."""
    resource = synth.template_json["Resources"][logical_id]
    reasons = []
    for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
        if rule["id"] != "AwsSolutions-IAM5":
            continue
        for pattern in rule.get("applies_to") or []:
            if isinstance(pattern, dict):
                regex = pattern["regex"].strip("/")
                matched = re.fullmatch(regex, finding) is not None
            else:
                matched = pattern == finding
            if matched:
                reasons.append(rule["reason"])
    return reasons


def test_there_are_policies_to_check(synth: Synthesized) -> None:
    assert len(policy_documents(synth)) >= 6


def test_no_statement_allows_every_action(synth: Synthesized) -> None:
    for logical_id, document in policy_documents(synth):
        for statement in document["Statement"]:
            assert "NotAction" not in statement and "NotResource" not in statement, (logical_id, statement)
            for action in as_list(statement.get("Action", [])):
                assert action != "*" and not action.endswith(":*"), f"{logical_id} allows {action}"


def test_every_wildcard_is_accepted_with_a_written_reason(synth: Synthesized) -> None:
    unexplained = []
    for logical_id, document in policy_documents(synth):
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            findings = [f"Action::{a}" for a in as_list(statement.get("Action", [])) if "*" in a]
            findings += [
                f"Resource::{r}" for r in (nag_render(v) for v in as_list(statement.get("Resource", []))) if "*" in r
            ]
            for finding in findings:
                reasons = accepted(synth, logical_id, finding)
                if not reasons or not set(reasons) <= REASONS:
                    unexplained.append((logical_id, statement.get("Sid"), finding))
    assert unexplained == []


def test_every_full_wildcard_resource_is_an_action_without_resource_level_permissions(synth: Synthesized) -> None:
    """``Resource: *`` only where the service offers nothing narrower, and only for our known reason."""
    for logical_id, document in policy_documents(synth):
        for statement in document["Statement"]:
            if "*" in as_list(statement.get("Resource", [])):
                reasons = set(accepted(synth, logical_id, "Resource::*"))
                assert reasons and reasons <= {WILDCARDS["NoResourceLevelPermissions"]}, (logical_id, statement)


def test_every_bucket_is_encrypted_private_and_ssl_only(synth: Synthesized) -> None:
    buckets = synth.resources("AWS::S3::Bucket")
    assert buckets
    policies = [p["Properties"] for p in synth.resources("AWS::S3::BucketPolicy").values()]
    for logical_id, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        (policy,) = [p for p in policies if p["Bucket"] == {"Ref": logical_id}]
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["PolicyDocument"]["Statement"]
        ), logical_id


def test_every_api_method_needs_the_key_and_is_validated_and_throttled(synth: Synthesized) -> None:
    methods = synth.resources("AWS::ApiGateway::Method")
    assert methods
    for logical_id, method in methods.items():
        properties = method["Properties"]
        assert properties["HttpMethod"] != "ANY", logical_id
        assert properties["ApiKeyRequired"] is True, logical_id
        assert "RequestValidatorId" in properties, logical_id
        assert properties.get("AuthorizationType", "NONE") == "NONE"  # the key is the authentication (APIG4)
    for stage in synth.resources("AWS::ApiGateway::Stage").values():
        for settings in stage["Properties"]["MethodSettings"]:
            assert settings["ThrottlingRateLimit"] > 0 and settings["ThrottlingBurstLimit"] > 0
            assert settings["DataTraceEnabled"] is False  # full request logging would write bodies and keys
    for plan in synth.resources("AWS::ApiGateway::UsagePlan").values():
        throttle = plan["Properties"]["Throttle"]
        assert throttle["RateLimit"] > 0 and throttle["BurstLimit"] >= throttle["RateLimit"]


# --- secrets ---------------------------------------------------------------------------------------------------

SECRET_PATTERNS = {
    "aws-access-key-id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "aws-secret-access-key": re.compile(r"(?i)aws_?secret_?access_?key\W{1,4}[A-Za-z0-9/+]{40}\b"),
    "private-key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "github-token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "slack-token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),
}


def secrets_in(text: str) -> list[str]:
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def test_the_template_and_its_outputs_hold_no_secrets(synth: Synthesized) -> None:
    assert secrets_in(json.dumps(synth.template_json)) == []
    for name, output in synth.template_json["Outputs"].items():
        text = json.dumps(output)
        assert "Fn::GetAtt" not in text or "APIKey" not in text, name
    # The API key's value is generated by API Gateway, never written in the template; outputs say how to read it.
    for key in synth.resources("AWS::ApiGateway::ApiKey").values():
        assert "Value" not in key["Properties"]
    for function in synth.resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [v for v in variables if re.search(r"(?i)secret|password|token|api_?key", v)]


def test_the_repository_holds_no_secrets() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, (n.decode() for n in listed)):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:1024]:  # binary (images, archives)
            continue
        found += [(name, kind) for kind in secrets_in(data.decode("utf-8", "replace"))]
    assert found == []


def test_the_lambda_never_logs_the_api_key_or_the_body() -> None:
    api = load_lambda_module("api")
    lines: list[str] = []
    capture = logging.Handler(logging.DEBUG)
    capture.setFormatter(api.JsonFormatter())
    capture.emit = lambda record: lines.append(capture.format(record))  # type: ignore[method-assign]
    key = "kZ3xq9VbN2mT7pLw4sYh8uRc"
    event = rest_event(b"not an image at all", headers={"x-api-key": key})
    event["requestContext"]["identity"]["apiKey"] = key
    level = api.log.level
    api.log.addHandler(capture)
    api.log.setLevel(logging.DEBUG)
    try:
        response = api.handler(event, None)
    finally:
        api.log.removeHandler(capture)
        api.log.setLevel(level)
    assert response["statusCode"] == 400
    logged = "\n".join(lines)
    assert lines  # one JSON line per request
    assert key not in logged and "not an image at all" not in logged
    assert key not in json.dumps(response)
