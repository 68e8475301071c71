"""Local datasets in the channel layout ``<channel>/<count>/<id>.jpg``, built from a manifest.

The vendored sample (``data/sample``: 50 real ABID photos with their counts) is the embedded default of the local
twin and the tests; its split is the manifest's split, so a photo is in the same channel here as in the cloud.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from bincount.data.manifest import SPLITS, ManifestEntry, build_manifest, load_file_list
from bincount.paths import SAMPLE_DIR


def sample_entries(sample_dir: Path = SAMPLE_DIR) -> list[ManifestEntry]:
    """Manifest entries of the vendored photos (their ids, counts and manifest splits)."""
    labels: dict[str, int] = json.loads((sample_dir / "labels.json").read_text(encoding="utf-8"))
    by_id = {e.id: e for e in build_manifest(load_file_list())}
    entries = []
    for image_id, count in labels.items():
        entry = by_id.get(image_id)
        if entry is None or entry.count != count:
            raise ValueError(f"vendored photo {image_id} (count {count}) does not match the subset manifest")
        entries.append(entry)
    return sorted(entries, key=lambda e: e.dest_key)


def materialize(entries: Iterable[ManifestEntry], images_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Place each entry's ``<images_dir>/<id>.jpg`` at ``<out_dir>/<split>/<count>/<id>.jpg`` (hard link or copy).

    Returns the channel folders by split name. Images already in place are left alone.
    """
    for e in entries:
        source = images_dir / f"{e.id}.jpg"
        target = out_dir / e.dest_key
        if target.exists():
            continue
        if not source.is_file():
            raise FileNotFoundError(f"image {source} of manifest entry {e.id} is missing")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    return {split: out_dir / split for split in SPLITS}


def sample_dataset(out_dir: Path, sample_dir: Path = SAMPLE_DIR) -> dict[str, Path]:
    """The vendored photos in the channel layout under ``out_dir``."""
    return materialize(sample_entries(sample_dir), sample_dir / "images", out_dir)
