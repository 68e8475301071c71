"""The training source tarball: script-mode layout, byte-for-byte reproducible, and what the synthesized asset holds."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from stacks.source_bundle import PROJECT_ROOT, source_members, write_tarball
from tests.support.cdk import synthesized


def names(archive: Path) -> list[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.getnames()


def test_layout_is_what_script_mode_and_the_artifact_code_expect(tmp_path: Path) -> None:
    archive = write_tarball(source_members(), tmp_path / "source.tar.gz")
    members = names(archive)
    assert members == sorted(members)
    assert {
        "hpo.py",
        "extract_features.py",
        "train_model.py",
        "requirements.txt",
        "inference/endpoint_inference.py",
    } <= set(members)
    package = {p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "bincount").rglob("*.py")}
    assert {m for m in members if m.startswith("bincount/")} == package
    assert {"bincount/__init__.py", "bincount/training/__init__.py", "bincount/training/train.py"} <= package
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]
    with tarfile.open(archive, "r:gz") as tar:
        hpo = tar.extractfile("hpo.py").read()  # type: ignore[union-attr]
        requirements = tar.extractfile("requirements.txt").read()  # type: ignore[union-attr]
    assert hpo == (PROJECT_ROOT / "training" / "hpo.py").read_bytes()
    assert requirements == (PROJECT_ROOT / "training" / "requirements.txt").read_bytes()


def test_archive_is_reproducible(tmp_path: Path) -> None:
    first = write_tarball(source_members(), tmp_path / "a" / "source.tar.gz").read_bytes()
    second = write_tarball(source_members(), tmp_path / "b" / "source.tar.gz").read_bytes()
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=io.BytesIO(first))) as tar:
        infos = tar.getmembers()
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}
    assert all(i.isfile() for i in infos)


def test_missing_entry_point_fails_with_the_path(tmp_path: Path) -> None:
    for folder in ("training", "inference", "bincount"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "training" / "train_model.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_model\.py"):
        source_members(tmp_path)


def test_synthesized_asset_is_that_tarball_and_the_jobs_point_at_it(tmp_path: Path) -> None:
    synth = synthesized()
    manifest = json.loads((synth.outdir / f"{synth.stack.stack_name}.assets.json").read_text())
    tarballs = [a for a in manifest["files"].values() if a["source"]["path"].endswith(".tar.gz")]
    assert len(tarballs) == 1 and tarballs[0]["source"]["packaging"] == "file"
    built = write_tarball(source_members(), tmp_path / "source.tar.gz").read_bytes()
    assert (synth.outdir / tarballs[0]["source"]["path"]).read_bytes() == built
    # The state machine hands its S3 URL to SageMaker as sagemaker_submit_directory.
    key = next(iter(tarballs[0]["destinations"].values()))["objectKey"]
    properties = synth.state_machine()["Properties"]
    assert key in json.dumps(properties["DefinitionSubstitutions"]["TrainingSourceUrl"])
    assert '"sagemaker_submit_directory": "${TrainingSourceUrl}"' in properties["DefinitionString"]
