"""The full manifest builder on real ABID metadata: kept images, malformed ones skipped and counted, the subset's
split kept, photos copied into the channel layout, the manifest written last."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bincount.data import full_manifest
from bincount.data.full_manifest import (
    FULL_MANIFEST_KEY,
    MalformedMetadata,
    build,
    full_entries,
    metadata_ids,
    parse_quantity,
    scan_metadata,
)
from bincount.data.manifest import SOURCE_BUCKET, SPLITS, build_manifest, load_file_list, read_manifest, split_counts
from bincount.data.sample import SAMPLE_DIR

METADATA_DIR = SAMPLE_DIR / "metadata"
SHARED_METADATA = SAMPLE_DIR.parents[2] / "shared" / "abid" / "sample" / "metadata"  # 515 real ones, when present
MALFORMED = {
    "90001": b"{not json",
    "90002": json.dumps({"EXPECTED_QUANTITY": "three"}).encode(),
    "90003": json.dumps({"BIN_FCSKU_DATA": {}}).encode(),
    "90004": json.dumps([1, 2]).encode(),
    "90005": json.dumps({"EXPECTED_QUANTITY": True}).encode(),
}
DATA_BUCKET = "bincount-data-test"


def real_metadata(folder: Path = METADATA_DIR) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def test_vendored_metadata_are_real_abid_documents() -> None:
    docs = real_metadata()
    labels = json.loads((SAMPLE_DIR / "labels.json").read_text())
    assert len(docs) == 60 and set(labels) <= set(docs)
    assert all(parse_quantity(docs[i]) == n for i, n in labels.items())
    assert sum(1 for d in docs.values() if not 1 <= parse_quantity(d) <= 5) == 10


@pytest.mark.parametrize("image_id", sorted(MALFORMED))
def test_malformed_metadata_is_refused_with_the_reason(image_id: str) -> None:
    with pytest.raises(MalformedMetadata):
        parse_quantity(MALFORMED[image_id])


def test_metadata_keys_give_string_ids() -> None:
    keys = ["metadata/00001.json", "metadata/1000.json", "metadata/", "metadata/x.txt", "bin-images/1.jpg"]
    assert list(metadata_ids(keys)) == ["00001", "1000"]


def test_scan_keeps_1_to_5_and_counts_what_it_skips() -> None:
    docs = {**real_metadata(), **MALFORMED}

    def read(image_id: str) -> bytes:
        if image_id == "99999":
            raise ConnectionError("reset by peer")
        return docs[image_id]

    scan = scan_metadata([*docs, "99999"], read, workers=8)
    labels = json.loads((SAMPLE_DIR / "labels.json").read_text())
    assert {i: c for c, ids in scan.ids_by_count.items() for i in ids} == labels
    assert (scan.read, scan.kept, scan.out_of_range) == (66, 50, 10)
    assert sorted(scan.malformed) == sorted(MALFORMED) and scan.failed == ["99999"]


@pytest.mark.skipif(not SHARED_METADATA.is_dir(), reason="the 515-photo ABID sample is not next to the checkout")
def test_all_515_sample_metadata_keep_the_subsets_labels_and_split() -> None:
    docs = real_metadata(SHARED_METADATA)
    scan = scan_metadata(docs, docs.__getitem__, workers=16)
    assert (scan.read, scan.kept, scan.malformed, scan.failed) == (515, 292, [], [])
    subset = load_file_list()
    entries = full_entries(scan.ids_by_count, subset)
    by_subset = {e.id: e for e in build_manifest(subset)}
    assert all(by_subset[e.id].count == e.count and by_subset[e.id].split == e.split for e in entries)


def synthetic_full(extra_per_count: int) -> dict[int, list[str]]:
    """file_list.json plus ``extra_per_count`` made-up ids per count: a stand-in for the half million."""
    subset = load_file_list()
    return {c: [*ids, *(f"x{c}-{n:06d}" for n in range(extra_per_count))] for c, ids in subset.items()}


def test_full_split_keeps_every_subset_image_and_stays_stratified() -> None:
    subset = load_file_list()
    entries = full_entries(synthetic_full(5000), subset)
    subset_split = {e.id: e.split for e in build_manifest(subset)}
    assert all(e.split == subset_split[e.id] for e in entries if e.id in subset_split)
    table = split_counts(entries)
    for count, ids in synthetic_full(5000).items():
        total = len(ids)
        for split, share in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
            assert abs(table[split][count] - share * total) <= 2, (count, split, table[split][count], total)


@pytest.mark.parametrize("per_class", [50, 400, 1200])
def test_a_growing_subset_keeps_its_images_splits_in_the_full_manifest(per_class: int) -> None:
    subset = load_file_list()
    full = {e.id: e.split for e in full_entries(synthetic_full(2000), subset)}
    small = build_manifest(subset, max_per_class=per_class)
    assert all(full[e.id] == e.split for e in small)
    assert Counter(e.split for e in small)["train"] >= 0.79 * len(small)


@pytest.fixture
def buckets():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=DATA_BUCKET)
        for image_id, body in {**real_metadata(), **MALFORMED}.items():
            s3.put_object(Bucket=SOURCE_BUCKET, Key=f"metadata/{image_id}.json", Body=body)
        for image in sorted((SAMPLE_DIR / "images").glob("*.jpg")):
            s3.put_object(Bucket=SOURCE_BUCKET, Key=f"bin-images/{image.name}", Body=image.read_bytes())
        yield s3


def test_job_builds_the_manifest_copies_the_photos_and_writes_the_manifest_last(buckets, tmp_path: Path) -> None:
    assert full_manifest.main(["--bucket", DATA_BUCKET, "--region", "us-east-1", "--workers", "8"]) == 0
    keys = [o["Key"] for o in buckets.list_objects_v2(Bucket=DATA_BUCKET)["Contents"]]
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_bytes(buckets.get_object(Bucket=DATA_BUCKET, Key=FULL_MANIFEST_KEY)["Body"].read())
    entries = read_manifest(manifest_file)
    labels = json.loads((SAMPLE_DIR / "labels.json").read_text())
    assert {e.id: e.count for e in entries} == labels
    assert sorted(k for k in keys if k.endswith(".jpg")) == sorted(f"full/{e.dest_key}" for e in entries)
    copied = buckets.get_object(Bucket=DATA_BUCKET, Key=f"full/{entries[0].dest_key}")["Body"].read()
    assert copied == (SAMPLE_DIR / "images" / f"{entries[0].id}.jpg").read_bytes()
    summary = json.loads(buckets.get_object(Bucket=DATA_BUCKET, Key="full/summary.json")["Body"].read())
    assert (summary["read"], summary["kept"], summary["outOfRange"], summary["malformed"]) == (65, 50, 10, 5)
    assert summary["images"] == 50 and summary["copyFailed"] == 0
    assert sum(summary["splits"].values()) == 50


def test_a_photo_that_cannot_be_copied_leaves_the_manifest(buckets) -> None:
    buckets.delete_object(Bucket=SOURCE_BUCKET, Key="bin-images/00004.jpg")
    entries, summary = build(buckets, bucket=DATA_BUCKET, subset=load_file_list(), workers=4)
    assert summary["copyFailed"] == 1 and "00004" not in {e.id for e in entries} and summary["images"] == 49
