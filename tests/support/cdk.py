"""Shared by the CDK tests (no tests here): the app synthesized once per session, the way `npx cdk synth` builds it.

Synthesis takes several seconds (jsii, cdk-nag, sagemaker-core's image table), so every CDK test module asks
:func:`synthesized` for the same cached result instead of building its own app.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App
from aws_cdk.assertions import Template

from bincount.paths import PROJECT_ROOT
from stacks.app_builder import build_app
from stacks.bincount_stack import BincountStack

ROOT = PROJECT_ROOT
CDK_JSON = ROOT / "cdk.json"
REGION = "us-east-1"
# What the CDK CLI would pass without credentials: a region, no account.
ENVIRON = {"CDK_DEFAULT_REGION": REGION}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: its stack, the template (assertions and plain JSON) and the cloud assembly folder."""

    app: App
    stack: BincountStack
    template: Template
    template_json: dict[str, Any]
    outdir: Path

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resources of one type, by logical id."""
        return {k: v for k, v in self.template_json["Resources"].items() if v["Type"] == resource_type}

    def only(self, resource_type: str) -> dict[str, Any]:
        """The one resource of a type (fails when there are several or none)."""
        found = list(self.resources(resource_type).values())
        assert len(found) == 1, f"expected one {resource_type}, found {len(found)}"
        return found[0]

    def state_machine(self, construct: str = "Pipeline") -> dict[str, Any]:
        """A state machine by its construct's id: the training pipeline (``Pipeline``), the deployment
        (``Lifecycle``) or the batch (``BatchCounting``)."""
        (found,) = [
            r
            for logical_id, r in self.resources("AWS::StepFunctions::StateMachine").items()
            if logical_id.startswith(construct)
        ]
        return found


def cdk_context() -> dict[str, Any]:
    """The context cdk.json gives the CLI."""
    return json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]


def synthesized(**overrides: Any) -> Synthesized:
    """The app with cdk.json's context (and ``overrides`` of it, as ``-c key=value`` gives them), synthesized into a
    temporary cloud assembly once per session and set of overrides."""
    return _synthesized(tuple(sorted(overrides.items())))


@functools.cache
def _synthesized(overrides: tuple[tuple[str, Any], ...]) -> Synthesized:
    outdir = Path(tempfile.mkdtemp(prefix="bincount-cdk-"))
    atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    app, stack = build_app(context={**cdk_context(), **dict(overrides)}, environ=ENVIRON, outdir=str(outdir))
    app.synth()
    template = Template.from_stack(stack)
    return Synthesized(app=app, stack=stack, template=template, template_json=template.to_json(), outdir=outdir)
