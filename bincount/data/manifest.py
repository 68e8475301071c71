"""The dataset manifest: which ABID images we use, their counts, and their train/valid/test split.

The manifest is built from ``file_list.json`` (keys "1".."5", values ``data/metadata/<id>.json``) once, the same way
at CDK synth time and in the local twin, so every run and every machine sees the same split (docs/design.md §2).

The split is stratified and deterministic: within each count, images are ordered by a seeded SHA-256 hash of their
id and dealt out in a repeating pattern of ten (8 train, 1 valid, 1 test). Any prefix of that order is itself an
80/10/10 stratified sample, which is what a smaller ``max_per_class`` subset takes.

Ids are strings throughout: ``01000`` and ``1000`` are different images.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bincount.data.labels import COUNTS
from bincount.paths import DATA_DIR

SOURCE_BUCKET = "aft-vbi-pds"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_SEED = "bincount-split-v1"
# One cycle of the deal: 8 train, 1 valid, 1 test.
_DEAL: tuple[str, ...] = ("train",) * 8 + ("valid", "test")
_METADATA_PATH = re.compile(r"^(?:.*/)?metadata/(?P<id>[0-9A-Za-z_-]+)\.json$")

DEFAULT_FILE_LIST = DATA_DIR / "file_list.json"


class ManifestError(ValueError):
    """The file list or manifest is malformed; the message says where."""


@dataclass(frozen=True)
class ManifestEntry:
    """One image of the dataset."""

    id: str
    count: int
    split: str

    @property
    def source_key(self) -> str:
        """Key of the image in the public ABID bucket."""
        return f"bin-images/{self.id}.jpg"

    @property
    def metadata_key(self) -> str:
        """Key of the image's metadata in the public ABID bucket."""
        return f"metadata/{self.id}.json"

    @property
    def dest_key(self) -> str:
        """Key of the image in the channel layout ``<channel>/<count>/<id>.jpg``."""
        return f"{self.split}/{self.count}/{self.id}.jpg"

    def to_json(self) -> dict[str, object]:
        """The entry as written to the manifest file (one object of a JSON array)."""
        return {**asdict(self), "source_key": self.source_key, "dest_key": self.dest_key}


def parse_file_list(raw: Mapping[str, Sequence[str]]) -> dict[int, list[str]]:
    """Validate a decoded ``file_list.json`` and return the image ids per count.

    Raises:
        ManifestError: a key outside "1".."5", a value that is not a metadata path, or an id listed twice.
    """
    ids_by_count: dict[int, list[str]] = {}
    seen: dict[str, int] = {}
    for key, paths in raw.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) in COUNTS):
            raise ManifestError(f"file list key {key!r} is not an object count in {COUNTS}")
        count = int(key)
        if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
            raise ManifestError(f"file list value for count {key} must be a list of metadata paths")
        ids: list[str] = []
        for path in paths:
            match = _METADATA_PATH.match(path) if isinstance(path, str) else None
            if match is None:
                raise ManifestError(f"file list entry {path!r} (count {key}) is not like 'data/metadata/<id>.json'")
            image_id = match["id"]
            if image_id in seen:
                raise ManifestError(f"image id {image_id!r} is listed under count {seen[image_id]} and {count}")
            seen[image_id] = count
            ids.append(image_id)
        ids_by_count[count] = ids
    return ids_by_count


def load_file_list(path: str | Path = DEFAULT_FILE_LIST) -> dict[int, list[str]]:
    """Read and validate ``file_list.json``; ids stay strings."""
    with open(path, encoding="utf-8") as f:
        raw = json.load(f, parse_int=str)
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: expected a JSON object of count -> metadata paths")
    return parse_file_list(raw)


def split_rank(image_id: str, seed: str = SPLIT_SEED) -> str:
    """The seeded hash that orders an id within its count."""
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def build_manifest(
    ids_by_count: Mapping[int, Iterable[str]],
    *,
    max_per_class: int | None = None,
    seed: str = SPLIT_SEED,
) -> list[ManifestEntry]:
    """Assign every id a split, stratified by count, and return the manifest sorted by destination key.

    Args:
        ids_by_count: image ids per object count, as from :func:`load_file_list`.
        max_per_class: keep at most this many images per count (a stratified prefix); ``None`` keeps all.
        seed: the split seed; changing it reshuffles the split.
    """
    if max_per_class is not None and max_per_class < 1:
        raise ManifestError(f"max_per_class must be at least 1, got {max_per_class}")
    entries: list[ManifestEntry] = []
    for count, ids in ids_by_count.items():
        ordered = sorted(ids, key=lambda image_id: (split_rank(image_id, seed), image_id))
        if max_per_class is not None:
            ordered = ordered[:max_per_class]
        entries.extend(
            ManifestEntry(id=image_id, count=count, split=_DEAL[position % len(_DEAL)])
            for position, image_id in enumerate(ordered)
        )
    return sorted(entries, key=lambda e: e.dest_key)


def manifest_json(entries: Iterable[ManifestEntry]) -> str:
    """The manifest as a JSON array, the form a Step Functions Distributed Map's ItemReader reads."""
    return json.dumps([e.to_json() for e in entries], separators=(",", ":"))


def write_manifest(entries: Iterable[ManifestEntry], path: str | Path) -> Path:
    """Write the manifest JSON array to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest_json(entries), encoding="utf-8")
    return path


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read a manifest written by :func:`write_manifest`."""
    with open(path, encoding="utf-8") as f:
        rows = json.load(f)
    try:
        return [ManifestEntry(id=str(r["id"]), count=int(r["count"]), split=str(r["split"])) for r in rows]
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path}: not a bincount manifest ({e})") from e


def split_counts(entries: Iterable[ManifestEntry]) -> dict[str, dict[int, int]]:
    """Number of images per split and count, for summaries and tests."""
    table = {split: dict.fromkeys(COUNTS, 0) for split in SPLITS}
    for e in entries:
        table[e.split][e.count] += 1
    return table
