"""Snapshot of the synthesized template, asset hashes masked, so any change to the infrastructure shows in review.

After an intended change: ``UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_cdk_snapshot.py`` and commit the diff.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from tests.support.cdk import synthesized

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "bincount_template.json"
# Asset hashes (sha256) change whenever bincount/, training/, inference/ or lambda/ change.
_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalized(template: dict[str, Any]) -> dict[str, Any]:
    """The template with asset hashes masked and the state machine definition parsed, for readable diffs."""
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            resource["Properties"]["DefinitionString"] = json.loads(resource["Properties"]["DefinitionString"])
    return json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(template)))


def test_template_matches_the_snapshot() -> None:
    current = normalized(synthesized().template_json)
    text = json.dumps(current, indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot yet: UPDATE_SNAPSHOTS=1 .venv/bin/pytest {Path(__file__).name}"
    assert json.loads(SNAPSHOT.read_text(encoding="utf-8")) == current, (
        "the template changed: review it, then UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_cdk_snapshot.py"
    )


def test_masking_removes_only_asset_hashes() -> None:
    masked = normalized({"Resources": {"A": {"Type": "T", "Properties": {"S3Key": f"{'ab' * 32}.zip", "Name": "x"}}}})
    assert masked["Resources"]["A"]["Properties"] == {"S3Key": "<asset-hash>.zip", "Name": "x"}
