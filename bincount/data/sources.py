"""Where the local twin's photos come from: the vendored sample, a folder, or the public ABID bucket.

Each source ends as a dataset in the channel layout ``<channel>/<count>/<id>.jpg`` under the run folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bincount.data.channel import DataError
from bincount.data.labels import COUNTS
from bincount.data.manifest import SPLITS, ManifestEntry, build_manifest, load_file_list, write_manifest
from bincount.data.sample import materialize, sample_dataset

log = logging.getLogger(__name__)

ABID_URL = os.environ.get("BINCOUNT_ABID_URL", "https://aft-vbi-pds.s3.amazonaws.com")
DOWNLOAD_TIMEOUT_S = 30


def dataset_from_folder(folder: Path, out_dir: Path) -> dict[str, Path]:
    """A folder already in the channel layout is used as it is; a folder of ABID photos with their metadata
    (``images/<id>.jpg`` + ``metadata/<id>.json``, or both side by side) is split and laid out under ``out_dir``.

    Raises:
        DataError: the folder is neither, or holds no photo with 1..5 objects.
    """
    folder = folder.resolve()
    if all((folder / split).is_dir() for split in SPLITS):
        return {split: folder / split for split in SPLITS}
    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    metadata_dir = folder / "metadata" if (folder / "metadata").is_dir() else folder
    ids_by_count: dict[int, list[str]] = {c: [] for c in COUNTS}
    skipped = 0
    for image in sorted(images_dir.glob("*.jpg")):
        meta = metadata_dir / f"{image.stem}.json"
        if not meta.is_file():
            skipped += 1
            continue
        try:
            count = int(json.loads(meta.read_text(encoding="utf-8"))["EXPECTED_QUANTITY"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("skipping %s: unreadable metadata %s (%s)", image.name, meta, e)
            skipped += 1
            continue
        if count in ids_by_count:
            ids_by_count[count].append(image.stem)
        else:
            skipped += 1
    entries = build_manifest({c: ids for c, ids in ids_by_count.items() if ids})
    if not entries:
        raise DataError(
            f"{folder} has no photos with 1..5 objects: give a folder with train/ valid/ test/ channels, or ABID "
            "photos with their metadata (images/<id>.jpg and metadata/<id>.json with EXPECTED_QUANTITY)"
        )
    if skipped:
        log.info("%d photos in %s skipped (no metadata, or a count outside 1..5)", skipped, folder)
    write_manifest(entries, out_dir.parent / "manifest.json")
    return materialize(entries, images_dir, out_dir)


def download_subset(n_images: int, images_dir: Path, out_dir: Path, base_url: str = ABID_URL) -> dict[str, Path]:
    """Fetch a stratified sample of about ``n_images`` subset photos from the public bucket, then lay them out.

    Raises:
        DataError: a photo could not be downloaded (no internet?).
    """
    per_class = max(1, math.ceil(n_images / len(COUNTS)))
    entries = build_manifest(load_file_list(), max_per_class=per_class)
    images_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [f for f in pool.map(lambda e: _fetch(e, images_dir, base_url), entries) if f]
    if failures:
        raise DataError(
            f"could not download {len(failures)} of {len(entries)} photos from {base_url} "
            f"(first: {failures[0]}); without internet, use the bundled photos (no --download) or --data DIR"
        )
    write_manifest(entries, out_dir.parent / "manifest.json")
    return materialize(entries, images_dir, out_dir)


def _fetch(entry: ManifestEntry, images_dir: Path, base_url: str) -> str | None:
    """Download one photo unless present; returns an error description or None."""
    target = images_dir / f"{entry.id}.jpg"
    if target.is_file():
        return None
    url = f"{base_url.rstrip('/')}/{entry.source_key}"
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            body = response.read()
    except (urllib.error.URLError, OSError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"
    tmp = target.with_suffix(".part")
    tmp.write_bytes(body)
    tmp.replace(target)
    return None


def build_dataset(out_dir: Path, *, data: Path | None = None, download: int | None = None) -> dict[str, Path]:
    """The twin's dataset: ``--data DIR``, ``--download N``, or the vendored sample by default."""
    if data is not None and download is not None:
        raise DataError("use either --data DIR or --download N, not both")
    if data is not None:
        return dataset_from_folder(data, out_dir)
    if download is not None:
        return download_subset(download, out_dir.parent / "images", out_dir)
    return sample_dataset(out_dir)
