"""bincount.serving.reconcile, the torch-free reconciliation that ``bincount batch`` and the Batch Lambda share."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bincount.serving.reconcile import (
    COLUMNS,
    CountRow,
    ExpectationError,
    counts_csv,
    format_summary,
    load_expected,
    ordered_for_review,
    parse_expected_csv,
    photo_id,
    read_counts_csv,
    reconcile,
    summarize,
)

ROWS = [
    CountRow("01000", 3, 0.9, False),
    CountRow("1000", 2, 0.4, True),
    CountRow("00042", error="not a JPEG or PNG image"),
    CountRow("00007", 5, 0.7, False),
]


def test_ids_are_strings_from_file_names_and_keys() -> None:
    assert photo_id("shift/01000.jpg") == "01000"
    assert photo_id("s3-prefix/a/b/1000.JPEG") == "1000"
    assert photo_id("C:\\photos\\00004.png") == "00004"


def test_expected_csv_keeps_leading_zeros_and_refuses_bad_files(tmp_path: Path) -> None:
    assert parse_expected_csv("\ufeffid,expected,note\n01000,3,x\n1000, 4 ,y\n\n") == {"01000": 3, "1000": 4}
    with pytest.raises(ExpectationError, match="missing: expected"):
        parse_expected_csv("id,count\n1,2\n")
    with pytest.raises(ExpectationError, match="line 3: id 7 is listed twice"):
        parse_expected_csv("id,expected\n7,1\n7,2\n")
    with pytest.raises(ExpectationError, match="line 2: expected quantity 'three' is not a whole number"):
        parse_expected_csv("id,expected\n7,three\n")
    with pytest.raises(ExpectationError, match="no such file"):
        load_expected(tmp_path / "nothing.csv")


def test_abid_metadata_folder(tmp_path: Path) -> None:
    (tmp_path / "01000.json").write_text(json.dumps({"EXPECTED_QUANTITY": 3, "BIN_FCSKU_DATA": {}}))
    (tmp_path / "00004.json").write_text(json.dumps({"EXPECTED_QUANTITY": 0}))
    assert load_expected(tmp_path) == {"01000": 3, "00004": 0}
    (tmp_path / "bad.json").write_text(json.dumps({"image": "x"}))
    with pytest.raises(ExpectationError, match=r"bad\.json: no EXPECTED_QUANTITY"):
        load_expected(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ExpectationError, match="no ABID metadata"):
        load_expected(empty)


def test_summary_counts_errors_as_mismatches_of_their_expectation() -> None:
    rows = reconcile(ROWS, {"01000": 3, "1000": 3, "00042": 1})
    assert [r.match for r in rows] == [True, False, False, None]
    summary = summarize(rows)
    assert summary == {
        "n": 4,
        "counted": 3,
        "needs_review": 1,
        "errors": 1,
        "expected": 3,
        "matches": 1,
        "accuracy": pytest.approx(1 / 3),
        "mismatches": 2,
        "mismatched_ids": ["1000", "00042"],
    }
    assert "accuracy" not in summarize(ROWS)
    assert summarize(ROWS, with_expectations=True)["accuracy"] is None


def test_counts_csv_cells_and_round_trip() -> None:
    rows = reconcile(ROWS, {"01000": 3})
    text = counts_csv(rows)
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert lines[1] == "01000,3,0.900000,false,3,true,"
    assert lines[2] == "1000,2,0.400000,true,,,"
    assert lines[3] == "00042,,,,,,not a JPEG or PNG image"
    assert read_counts_csv(text) == [
        CountRow(
            r.id, r.count, None if r.confidence is None else round(r.confidence, 6), r.needs_review, r.error, r.expected
        )
        for r in rows
    ]


def test_the_table_puts_mismatches_first() -> None:
    rows = reconcile(ROWS, {"00007": 4})
    assert [r.id for r in ordered_for_review(rows)] == ["00007", "00042", "1000", "01000"]
    table = format_summary(rows, summarize(rows), limit=2).splitlines()
    assert table[1].startswith("00007") and "MISMATCH" in table[1]
    assert table[-2] == "... 2 more rows in counts.csv"
    assert table[-1].startswith("4 photos: 3 counted, 1 errors, 1 need review; 0/1 match")


def test_the_module_imports_without_torch_or_any_other_project_module() -> None:
    """The reconciliation Lambda packs this module with docstring-only package files: it may need nothing else (the
    lazy exports of bincount.serving's __init__ are not packed; a test in tests/functional/stacks checks the asset)."""
    code = (
        "import sys, bincount.serving.reconcile; "
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'bincount.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['bincount.lazy', 'bincount.serving', 'bincount.serving.reconcile']"
    source = Path("bincount/serving/reconcile.py").read_text(encoding="utf-8")
    assert "import bincount" not in source and "from bincount" not in source
