"""`npx cdk synth` works offline from the checkout, with no AWS credentials or configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cdk import ROOT

pytestmark = pytest.mark.slow


def test_cdk_synth_without_credentials(tmp_path: Path) -> None:
    # scripts/setup.sh refuses to finish without npm, so npx is always there after the README set-up.
    assert shutil.which("npx"), "Node.js/npx is missing: run the README set-up (make setup)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        HOME=str(tmp_path / "home"),  # no ~/.aws: no profile, region or credentials
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((out / "Bincount.template.json").read_text())
    assert "AWS::StepFunctions::StateMachine" in {r["Type"] for r in template["Resources"].values()}
    assert list(out.glob("asset.*.tar.gz")), "the training source tarball was bundled without Docker"
