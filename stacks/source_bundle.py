"""The training source as a reproducible ``.tar.gz`` file asset: script mode's ``sagemaker_submit_directory``.

CDK zips directory assets, but script mode wants a tarball, so a local bundler (no Docker) writes one ``.tar.gz``
and the asset uses ``BundlingOutput.ARCHIVED``. The archive is byte-for-byte reproducible (sorted entries, fixed
mtimes, owners and modes, gzip header mtime 0), and the asset hash is the hash of that output, so the asset, the
snapshot and deploys only change when the code does.

Layout (the tarball's root is the job's working directory)::

    hpo.py  extract_features.py  train_model.py  build_manifest.py  requirements.txt  bincount/**/*.py (each
    package's __init__)  data/file_list.json (the subset, whose split the full manifest keeps)
    inference/endpoint_inference.py  [inference/requirements.txt]

``bincount.model.artifact`` finds the inference handler at ``<root>/inference/endpoint_inference.py`` next to the
package, which is why the handler travels here too: the final job copies it into the model artifact's ``code/``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, BundlingOutput, DockerImage, ILocalBundling
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from bincount.paths import PROJECT_ROOT

TARBALL_NAME = "sourcedir.tar.gz"
_FIXED_MTIME = 0
_FILE_MODE = 0o644


def source_members(root: Path = PROJECT_ROOT) -> list[tuple[str, Path]]:
    """``(name in the archive, file)`` for every file of the training source, sorted by name.

    Raises:
        FileNotFoundError: an entry point, the requirements or the inference handler is missing.
    """
    required = {
        "hpo.py": root / "training" / "hpo.py",
        "extract_features.py": root / "training" / "extract_features.py",
        "train_model.py": root / "training" / "train_model.py",
        "build_manifest.py": root / "training" / "build_manifest.py",
        "data/file_list.json": root / "data" / "file_list.json",
        "requirements.txt": root / "training" / "requirements.txt",
        "inference/endpoint_inference.py": root / "inference" / "endpoint_inference.py",
    }
    missing = [str(path) for path in required.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"training source incomplete, missing: {', '.join(missing)}")
    members = dict(required)
    optional = root / "inference" / "requirements.txt"
    if optional.is_file():
        members["inference/requirements.txt"] = optional
    package = root / "bincount"
    members.update({path.relative_to(root).as_posix(): path for path in package.rglob("*.py")})
    if "bincount/__init__.py" not in members:
        raise FileNotFoundError(f"training source incomplete, missing: {package / '__init__.py'}")
    return sorted(members.items())


def write_tarball(members: Iterable[tuple[str, Path]], destination: Path) -> Path:
    """Write the members into a reproducible gzip-compressed tar at ``destination`` and return it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path in members:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = _FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    return destination


@jsii.implements(ILocalBundling)
class SourceTarballBundler:
    """Local bundling: writes the training source tarball into CDK's bundling output folder."""

    def __init__(self, root: Path = PROJECT_ROOT) -> None:
        self._root = root

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        """Write the tarball; True tells CDK that bundling succeeded without Docker."""
        write_tarball(source_members(self._root), Path(output_dir) / TARBALL_NAME)
        return True


def training_source_asset(scope: Construct, construct_id: str, root: Path = PROJECT_ROOT) -> s3_assets.Asset:
    """The training source tarball as an S3 file asset, hashed by its (reproducible) content."""
    return s3_assets.Asset(
        scope,
        construct_id,
        path=str(root / "training"),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds. CDK requires an image for the Docker fallback.
            image=DockerImage.from_registry("local-bundling-only"),
            local=SourceTarballBundler(root),
            output_type=BundlingOutput.ARCHIVED,
        ),
    )
