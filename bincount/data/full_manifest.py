"""The full ABID manifest: every image with 1..5 objects, read from the public bucket's metadata (docs/design.md §12).

Building it reads about half a million small ``metadata/<id>.json`` objects, so it runs as one SageMaker job
(``training/build_manifest.py``) with many concurrent reads, once; the state machine reuses the result while
``full/manifest.json`` exists. The same job copies each kept photo server-side (CopyObject, no bytes through the
job) into the data bucket's channel layout ``full/<split>/<count>/<id>.jpg`` (docs/adr/0004-full-dataset-input.md).

The split is the subset's where the subset has the image (:func:`bincount.data.manifest.build_manifest` over
``file_list.json``), so an image keeps its split whatever the subset; the images outside the subset are dealt with
the same seeded hash, 8/1/1 within each count. Both parts are stratified, so the union is too.

Malformed metadata (not JSON, no integer ``EXPECTED_QUANTITY``) is skipped and counted, never fatal; so are reads
that still fail after botocore's retries.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bincount.data.labels import COUNTS
from bincount.data.manifest import SOURCE_BUCKET, SPLITS, ManifestEntry, build_manifest, manifest_json, split_counts

log = logging.getLogger(__name__)

METADATA_PREFIX = "metadata/"
FULL_PREFIX = "full/"
FULL_MANIFEST_KEY = f"{FULL_PREFIX}manifest.json"  # written last: its presence means the dataset is complete
FULL_SUMMARY_KEY = f"{FULL_PREFIX}summary.json"
DEFAULT_WORKERS = 64
# The manifest job waits on S3, not on compute: the smallest general-purpose training instance.
MANIFEST_INSTANCE_TYPE = "ml.m5.large"
_METADATA_KEY = re.compile(r"^metadata/(?P<id>[0-9A-Za-z_-]+)\.json$")


class MalformedMetadata(ValueError):
    """A metadata object without a usable ``EXPECTED_QUANTITY``."""


@dataclass
class MetadataScan:
    """What reading the metadata found: ids per count (1..5), and what was left out and why."""

    ids_by_count: dict[int, list[str]] = field(default_factory=lambda: {c: [] for c in COUNTS})
    read: int = 0
    out_of_range: int = 0  # 0 or more than 5 objects
    malformed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return sum(len(ids) for ids in self.ids_by_count.values())

    def summary(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "outOfRange": self.out_of_range,
            "malformed": len(self.malformed),
            "failed": len(self.failed),
            "malformedExamples": self.malformed[:20],
            "failedExamples": self.failed[:20],
        }


def parse_quantity(body: bytes | str) -> int:
    """``EXPECTED_QUANTITY`` of one metadata document.

    Raises:
        MalformedMetadata: not a JSON object, or no whole-number ``EXPECTED_QUANTITY``.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedMetadata(f"not JSON ({e})") from e
    if not isinstance(doc, dict) or "EXPECTED_QUANTITY" not in doc:
        raise MalformedMetadata("no EXPECTED_QUANTITY")
    quantity = doc["EXPECTED_QUANTITY"]
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise MalformedMetadata(f"EXPECTED_QUANTITY {quantity!r} is not a whole number of objects")
    return quantity


def metadata_ids(keys: Iterable[str]) -> Iterator[str]:
    """Image ids of the ``metadata/<id>.json`` keys (others ignored); ids stay strings."""
    for key in keys:
        match = _METADATA_KEY.match(key)
        if match:
            yield match["id"]


def list_metadata_keys(s3: Any, bucket: str = SOURCE_BUCKET, prefix: str = METADATA_PREFIX) -> Iterator[str]:
    """Every key under ``prefix`` (ListObjectsV2, 1,000 a page)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def scan_metadata(ids: Iterable[str], read: Callable[[str], bytes], *, workers: int = DEFAULT_WORKERS) -> MetadataScan:
    """Read every id's metadata with ``workers`` concurrent reads; ``read(id)`` returns the document's bytes."""
    scan = MetadataScan()

    def one(image_id: str) -> tuple[str, int | None, str | None]:
        try:
            return image_id, parse_quantity(read(image_id)), None
        except MalformedMetadata as e:
            return image_id, None, f"malformed: {e}"
        except Exception as e:  # a read that failed after the client's retries: counted, not fatal
            return image_id, None, f"failed: {type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for image_id, quantity, problem in pool.map(one, ids):
            scan.read += 1
            if problem is not None:
                (scan.malformed if problem.startswith("malformed") else scan.failed).append(image_id)
                log.warning("skipping metadata of %s: %s", image_id, problem)
            elif quantity in scan.ids_by_count:
                scan.ids_by_count[quantity].append(image_id)
            else:
                scan.out_of_range += 1
            if scan.read % 50_000 == 0:
                log.info("metadata read: %d (kept %d)", scan.read, scan.kept)
    return scan


def full_entries(ids_by_count: Mapping[int, Iterable[str]], subset: Mapping[int, Iterable[str]]) -> list[ManifestEntry]:
    """The full manifest: subset images keep the subset's split, the others are dealt 8/1/1 by the seeded hash.

    An id whose metadata count differs from the subset's keeps its subset split under the metadata's count.
    """
    subset_split = {e.id: e.split for e in build_manifest(subset)}
    rest = {count: [i for i in ids if i not in subset_split] for count, ids in ids_by_count.items()}
    dealt = {e.id: e.split for e in build_manifest({c: ids for c, ids in rest.items() if ids})}
    entries = [
        ManifestEntry(id=image_id, count=count, split=subset_split.get(image_id) or dealt[image_id])
        for count, ids in ids_by_count.items()
        for image_id in ids
    ]
    return sorted(entries, key=lambda e: e.dest_key)


def copy_photos(
    entries: Iterable[ManifestEntry],
    copy: Callable[[str, str], None],
    *,
    prefix: str = FULL_PREFIX,
    workers: int = DEFAULT_WORKERS,
) -> list[str]:
    """``copy(source_key, dest_key)`` for each entry into ``<prefix><split>/<count>/<id>.jpg``; returns the ids
    whose copy failed (after the client's retries)."""

    def one(entry: ManifestEntry) -> str | None:
        try:
            copy(entry.source_key, prefix + entry.dest_key)
            return None
        except Exception as e:
            log.warning("could not copy %s: %s: %s", entry.source_key, type(e).__name__, e)
            return entry.id

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [image_id for image_id in pool.map(one, entries) if image_id is not None]


def s3_client(region: str | None = None, *, workers: int = DEFAULT_WORKERS) -> Any:
    """A boto3 S3 client sized for ``workers`` threads, with adaptive retries (S3 503 SlowDown included)."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=workers + 8, retries={"max_attempts": 10, "mode": "adaptive"})
    return boto3.client("s3", region_name=region, config=config)


def build(
    s3: Any,
    *,
    bucket: str,
    subset: Mapping[int, Iterable[str]],
    source_bucket: str = SOURCE_BUCKET,
    source_s3: Any | None = None,
    prefix: str = FULL_PREFIX,
    workers: int = DEFAULT_WORKERS,
    limit: int | None = None,
    copy: bool = True,
) -> tuple[list[ManifestEntry], dict[str, Any]]:
    """List and read the public metadata, split, copy the photos into ``bucket`` and write the manifest last.

    ``s3`` writes to ``bucket``; ``source_s3`` (default ``s3``) reads ``source_bucket``. Returns the manifest and
    the summary written next to it.
    """
    source_s3 = source_s3 or s3
    ids = list(metadata_ids(list_metadata_keys(source_s3, source_bucket)))
    if limit is not None:
        ids = ids[:limit]
    log.info("%d metadata objects listed in s3://%s/%s", len(ids), source_bucket, METADATA_PREFIX)

    def read(image_id: str) -> bytes:
        return source_s3.get_object(Bucket=source_bucket, Key=f"{METADATA_PREFIX}{image_id}.json")["Body"].read()

    scan = scan_metadata(ids, read, workers=workers)
    entries = full_entries({c: v for c, v in scan.ids_by_count.items() if v}, subset)
    copy_failed: list[str] = []
    if copy:

        def copy_one(source_key: str, dest_key: str) -> None:
            s3.copy_object(
                Bucket=bucket,
                Key=dest_key,
                CopySource={"Bucket": source_bucket, "Key": source_key},
                TaggingDirective="REPLACE",
            )

        copy_failed = copy_photos(entries, copy_one, prefix=prefix, workers=workers)
        if copy_failed:
            failed = set(copy_failed)
            entries = [e for e in entries if e.id not in failed]
    table = split_counts(entries)
    summary = {
        **scan.summary(),
        "images": len(entries),
        "copyFailed": len(copy_failed),
        "splits": {split: sum(table[split].values()) for split in SPLITS},
        "perSplitAndCount": {split: {str(c): n for c, n in table[split].items()} for split in SPLITS},
    }
    s3.put_object(Bucket=bucket, Key=prefix + "summary.json", Body=json.dumps(summary, indent=2).encode())
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=manifest_json(entries).encode())
    log.info("full manifest: %s", json.dumps({k: v for k, v in summary.items() if "Examples" not in k}))
    return entries, summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of the BuildFullManifest job (training/build_manifest.py); options arrive as hyperparameters."""
    import argparse
    import os

    from bincount.data.manifest import load_file_list

    p = argparse.ArgumentParser(description="Build the full ABID manifest and copy its photos into the data bucket")
    p.add_argument("--bucket", required=True, help="the data bucket (manifest, summary and photos go under full/)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION"), help="the data bucket's region")
    p.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"concurrent requests (default: {DEFAULT_WORKERS})"
    )
    p.add_argument("--limit", type=int, default=None, help="read only the first N metadata objects (trials)")
    p.add_argument("--copy", choices=("true", "false"), default="true", help="copy the photos (default: true)")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        log.info("ignoring unknown options: %s", " ".join(unknown))
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    s3 = s3_client(args.region, workers=args.workers)
    source = s3_client("us-east-1", workers=args.workers)  # the public bucket's region
    _, summary = build(
        s3,
        bucket=args.bucket,
        subset=load_file_list(),
        source_s3=source,
        workers=args.workers,
        limit=args.limit,
        copy=args.copy == "true",
    )
    return 0 if summary["images"] else 2
