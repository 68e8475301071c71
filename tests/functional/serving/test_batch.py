"""``bincount batch`` over the vendored ABID photos with their real expected quantities (docs/design.md §11): a local
model in batches (the same answers as one photo at a time), the endpoint and the API, both expectation formats, a
broken photo, and the summary checked against the rows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from bincount import cli
from bincount.data.sample import SAMPLE_DIR
from bincount.serving.batch import LocalCounter, Progress, list_photos
from bincount.serving.reconcile import COLUMNS, COUNTS_FILE, SUMMARY_FILE, read_counts_csv, summarize
from tests.support.serving import ENDPOINT, PHOTOS, set_aws_env

LABELS: dict[str, int] = json.loads((SAMPLE_DIR / "labels.json").read_text())
BROKEN = "broken-0001"


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shift's folder: 12 real photos (one of them a PNG) and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("shift")
    for path in PHOTOS[:12]:
        shutil.copy(path, folder / path.name)
    (folder / f"{BROKEN}.jpg").write_bytes(PHOTOS[0].read_bytes()[:300])
    return folder


@pytest.fixture(scope="module")
def expected_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("expected") / "expected.csv"
    path.write_text("id,expected\n" + "".join(f"{k},{v}\n" for k, v in LABELS.items()) + f"{BROKEN},3\n")
    return path


@pytest.fixture(scope="module")
def expected_metadata() -> Path:
    """The real ABID metadata vendored with the sample (``EXPECTED_QUANTITY`` among the bin's item data), including
    documents of photos that are not in the shift."""
    folder = SAMPLE_DIR / "metadata"
    assert {p.stem for p in PHOTOS} < {p.stem for p in folder.glob("*.json")}
    return folder


def _read(out: Path) -> tuple[list[dict[str, str]], dict]:
    with (out / COUNTS_FILE).open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    return rows, json.loads((out / SUMMARY_FILE).read_text())


def _check_against_rows(out: Path, *, with_expectations: bool) -> None:
    """The summary recomputed from the CSV rows, and the contract's cell values."""
    rows, summary = _read(out)
    assert summary["n"] == len(rows)
    assert summary["errors"] == sum(bool(r["error"]) for r in rows)
    assert summary["needs_review"] == sum(r["needs_review"] == "true" for r in rows)
    for r in rows:
        assert r["needs_review"] in ({"true", "false"} if not r["error"] else {""})
        assert (r["count"] == "") == bool(r["error"])
        if with_expectations and r["expected"]:
            assert r["match"] == ("true" if r["count"] == r["expected"] else "false")
        else:
            assert r["match"] == ""
    if with_expectations:
        checked = [r for r in rows if r["expected"]]
        matches = sum(r["match"] == "true" for r in checked)
        assert summary["accuracy"] == pytest.approx(matches / len(checked))
        assert summary["mismatches"] == len(checked) - matches
    else:
        assert "accuracy" not in summary and "mismatches" not in summary
    assert summarize(read_counts_csv((out / COUNTS_FILE).read_text())) == summary


@pytest.mark.parametrize("fmt", ["csv", "metadata"])
def test_batch_with_a_local_model_reconciles_with_the_real_expected_counts(
    fmt, shift, expected_csv, expected_metadata, model_dir, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    expected = expected_csv if fmt == "csv" else expected_metadata
    argv = ["batch", str(shift), "--model", str(model_dir), "--out", str(out), "--expected", str(expected)]
    assert cli.main([*argv, "--batch-size", "5"]) == 1  # the broken photo: counted with an error, exit 1
    rows, summary = _read(out)
    assert [r["id"] for r in rows] == sorted([p.stem for p in PHOTOS[:12]] + [BROKEN])
    by_id = {r["id"]: r for r in rows}
    for key in (p.stem for p in PHOTOS[:12]):
        assert by_id[key]["expected"] == str(LABELS[key])  # ids as strings: "00004", not 4
    broken = by_id[BROKEN]
    assert broken["count"] == "" and "image" in broken["error"]
    assert broken["expected"] == ("3" if fmt == "csv" else "") and broken["match"] == ("false" if fmt == "csv" else "")
    assert summary["n"] == 13 and summary["errors"] == 1
    _check_against_rows(out, with_expectations=True)
    printed = capsys.readouterr()
    assert "13 photos: 12 counted, 1 errors" in printed.out
    assert "13/13 photos" in printed.err  # the progress bar
    table = printed.out.splitlines()
    mismatched = [r["id"] for r in rows if r["match"] == "false" and not r["error"]]
    if mismatched:  # mismatches come first in the table
        assert table[1].split()[0] in mismatched


def test_batch_without_expectations_leaves_expected_and_match_empty(shift, model_dir, tmp_path) -> None:
    out = tmp_path / "out"
    assert cli.main(["batch", str(PHOTOS[0]), str(PHOTOS[1]), "--model", str(model_dir), "--out", str(out)]) == 0
    rows, _ = _read(out)
    assert [r["id"] for r in rows] == [PHOTOS[0].stem, PHOTOS[1].stem]
    _check_against_rows(out, with_expectations=False)


def test_batched_answers_are_the_one_at_a_time_answers(shift, model_dir) -> None:
    counter = LocalCounter(model_dir, batch_size=4, workers=2)
    photos = list_photos([shift])
    batched = list(counter.count(photos))
    alone = [counter.count_one(p) for p in photos]
    assert [r.id for r in batched] == [r.id for r in alone]
    for b, a in zip(batched, alone, strict=True):
        assert (b.count, b.needs_review, b.error) == (a.count, a.needs_review, a.error)
        if a.confidence is not None:
            assert b.confidence == pytest.approx(a.confidence, abs=1e-4)


def test_batch_through_the_endpoint_and_the_api_give_the_local_answers(
    shift, expected_csv, model_dir, sagemaker, tmp_path, monkeypatch
) -> None:
    from bincount.local.api import LocalApi, load_handler, load_lambda_module

    set_aws_env(monkeypatch, sagemaker.url)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    api = load_lambda_module("api")
    api.runtime_client.cache_clear()
    api.sagemaker_client.cache_clear()
    outs = {name: tmp_path / name for name in ("local", "endpoint", "api")}
    base = [str(shift), "--expected", str(expected_csv), "--out"]
    assert cli.main(["batch", *base, str(outs["local"]), "--model", str(model_dir)]) == 1
    assert cli.main(["batch", *base, str(outs["endpoint"]), "--endpoint", ENDPOINT]) == 1
    with LocalApi(load_handler(), api_key="batch-key") as server:
        assert cli.main(["batch", *base, str(outs["api"]), "--url", server.url, "--api-key", "batch-key"]) == 1
    results = {name: _read(out) for name, out in outs.items()}
    local_rows = [(r["id"], r["count"], r["needs_review"], r["match"]) for r in results["local"][0]]
    for name in ("endpoint", "api"):
        rows, summary = results[name]
        assert [(r["id"], r["count"], r["needs_review"], r["match"]) for r in rows] == local_rows, name
        assert summary == results["local"][1], name
        assert next(r for r in rows if r["id"] == BROKEN)["error"].startswith(("400", "not a JPEG")), name


def test_bad_expectations_and_empty_inputs_are_usage_errors(tmp_path, model_dir, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("photo,qty\n1,2\n")
    out = str(tmp_path / "out")
    assert cli.main(["batch", str(PHOTOS[0]), "--model", str(model_dir), "--out", out, "--expected", str(bad)]) == 2
    assert "id, expected" in capsys.readouterr().err
    assert cli.main(["batch", str(tmp_path / "missing"), "--model", str(model_dir), "--out", out]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["batch", str(empty), "--model", str(model_dir), "--out", out]) == 2


def test_progress_bar_draws_on_its_stream() -> None:
    import io

    stream = io.StringIO()
    bar = Progress(4, stream, width=4, interval=0.0)
    for _ in range(4):
        bar.advance()
    bar.close()
    assert stream.getvalue().split("\r")[-1].startswith("[####] 4/4 photos")
