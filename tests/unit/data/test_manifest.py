"""The dataset manifest: ids as strings, a deterministic stratified 80/10/10 split, channel keys."""

from __future__ import annotations

import hashlib
import json

import pytest

from bincount.data.manifest import (
    DEFAULT_FILE_LIST,
    SPLITS,
    ManifestError,
    build_manifest,
    load_file_list,
    manifest_json,
    parse_file_list,
    read_manifest,
    split_counts,
    write_manifest,
)

PER_CLASS = {1: 1228, 2: 2299, 3: 2666, 4: 2373, 5: 1875}


def test_shipped_file_list_is_the_abid_subset() -> None:
    digest = hashlib.sha256(DEFAULT_FILE_LIST.read_bytes()).hexdigest()
    assert digest == "a9830d872e383734bf58cd698c2e76ab7b32f30fc431eb19e06dd3adf92f521e"
    ids = load_file_list()
    assert {c: len(v) for c, v in ids.items()} == PER_CLASS
    assert all(isinstance(i, str) for v in ids.values() for i in v)


def test_ids_stay_strings_with_leading_zeros() -> None:
    ids = parse_file_list({"1": ["data/metadata/01000.json"], "2": ["data/metadata/1000.json"]})
    assert ids == {1: ["01000"], 2: ["1000"]}
    keys = {e.dest_key for e in build_manifest(ids)}
    assert any("/01000.jpg" in k for k in keys) and any(k.endswith("/1000.jpg") for k in keys)


def test_split_is_stratified_80_10_10_and_deterministic() -> None:
    ids = load_file_list()
    first, second = build_manifest(ids), build_manifest(ids)
    assert first == second
    assert len(first) == sum(PER_CLASS.values())
    table = split_counts(first)
    for count, n in PER_CLASS.items():
        per_split = {s: table[s][count] for s in SPLITS}
        assert sum(per_split.values()) == n
        assert abs(per_split["valid"] - n / 10) <= 1 and abs(per_split["test"] - n / 10) <= 1, per_split


def test_split_does_not_depend_on_list_order() -> None:
    ids = load_file_list()
    shuffled = {c: list(reversed(v)) for c, v in reversed(list(ids.items()))}
    assert build_manifest(ids) == build_manifest(shuffled)


def test_subset_is_a_stratified_prefix_of_the_full_split() -> None:
    full = {e.id: e for e in build_manifest(load_file_list())}
    subset = build_manifest(load_file_list(), max_per_class=20)
    assert len(subset) == 100
    assert all(full[e.id] == e for e in subset), "an image changed split when the subset shrank"
    assert {s: sum(v.values()) for s, v in split_counts(subset).items()} == {"train": 80, "valid": 10, "test": 10}


def test_entry_keys_follow_the_channel_layout() -> None:
    entry = build_manifest({3: ["09915"]})[0]
    assert entry.source_key == "bin-images/09915.jpg"
    assert entry.metadata_key == "metadata/09915.json"
    assert entry.dest_key == f"{entry.split}/3/09915.jpg"


def test_manifest_round_trips_through_json(tmp_path) -> None:
    entries = build_manifest(load_file_list(), max_per_class=10)
    path = write_manifest(entries, tmp_path / "m" / "manifest.json")
    rows = json.loads(path.read_text())
    assert rows[0].keys() == {"id", "count", "split", "source_key", "dest_key"}
    assert read_manifest(path) == entries
    assert json.loads(manifest_json(entries)) == rows


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"6": ["data/metadata/1.json"]}, "not an object count"),
        ({"0": ["data/metadata/1.json"]}, "not an object count"),
        ({"1": "data/metadata/1.json"}, "must be a list"),
        ({"1": ["bin-images/1.jpg"]}, "is not like"),
        ({"1": ["data/metadata/7.json"], "2": ["data/metadata/7.json"]}, "listed under count 1 and 2"),
    ],
)
def test_bad_file_lists_are_refused_with_the_reason(raw, message) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_file_list(raw)


def test_bad_subset_size_is_refused() -> None:
    with pytest.raises(ManifestError, match="max_per_class"):
        build_manifest({1: ["1"]}, max_per_class=0)
