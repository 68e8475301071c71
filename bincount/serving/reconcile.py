"""Reconciling a shift's counts with the expected quantities: ``counts.csv`` and ``summary.json`` (docs/design.md §11).

Pure Python, standard library only: ``bincount batch`` uses it on this machine and the Batch state machine's Lambda
runs the very same module in the cloud (packed alone beside its handler).

- Expectations: a CSV with columns ``id,expected`` or a folder of ABID metadata ``<id>.json``
  (``EXPECTED_QUANTITY``). Ids are strings: ``01000`` and ``1000`` are different photos.
- ``counts.csv``: one row per photo, ``id,count,confidence,needs_review,expected,match,error``; booleans as
  ``true``/``false``; ``expected``/``match`` empty without an expectation; a photo that could not be counted has an
  empty count and its error (and, with an expectation, ``match`` false).
- ``summary.json``: ``n``, ``counted``, ``needs_review``, ``errors``; with expectations also ``expected`` (photos
  with one), ``matches``, ``accuracy`` (matches / photos with an expectation), ``mismatches`` (their number) and
  ``mismatched_ids``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

COUNTS_FILE = "counts.csv"
SUMMARY_FILE = "summary.json"
COLUMNS = ("id", "count", "confidence", "needs_review", "expected", "match", "error")
EXPECTED_COLUMNS = ("id", "expected")
METADATA_KEY = "EXPECTED_QUANTITY"
MAX_LISTED_MISMATCHES = 100
"""``summary.json`` lists at most this many mismatched ids (the CSV has them all)."""


class ExpectationError(ValueError):
    """The expectations could not be read; the message names the file and what was wrong."""


@dataclass(frozen=True)
class CountRow:
    """One photo: its answer (or error) and, once reconciled, its expectation."""

    id: str
    count: int | None = None
    confidence: float | None = None
    needs_review: bool | None = None
    error: str | None = None
    expected: int | None = None

    @property
    def match(self) -> bool | None:
        """Whether the count is the expected one; None without an expectation (an error never matches)."""
        if self.expected is None:
            return None
        return self.count == self.expected

    @classmethod
    def from_answer(cls, photo_id: str, answer: Mapping[str, Any]) -> CountRow:
        """A row from the handler's JSON (``count``, ``confidence``, ``needs_review``).

        Raises:
            ValueError: the answer lacks a field or holds the wrong type.
        """
        try:
            count = answer["count"]
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError(f"count {count!r} is not an integer")
            return cls(
                photo_id,
                count=count,
                confidence=float(answer["confidence"]),
                needs_review=bool(answer.get("needs_review", False)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"unexpected answer ({type(e).__name__}: {e})") from e


def photo_id(name: str) -> str:
    """A photo's id: its file name (or S3 key's last part) without the extension, as a string."""
    return PurePosixPath(name.replace("\\", "/")).stem


# --- expectations -------------------------------------------------------------------------------------------------


def _quantity(value: object, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ExpectationError(f"{where}: expected quantity {value!r} is not a whole number") from None
    if number < 0:
        raise ExpectationError(f"{where}: expected quantity {number} is negative")
    return number


def parse_expected_csv(text: str, source: str = "expected CSV") -> dict[str, int]:
    """``{id: expected}`` from CSV text with a header holding ``id`` and ``expected``.

    Raises:
        ExpectationError: columns missing, a value that is not a whole number, or an id given twice.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    missing = [c for c in EXPECTED_COLUMNS if c not in fields]
    if missing:
        raise ExpectationError(
            f"{source}: the header must name the columns {', '.join(EXPECTED_COLUMNS)} (missing: {', '.join(missing)})"
        )
    reader.fieldnames = fields
    expected: dict[str, int] = {}
    for line, row in enumerate(reader, start=2):
        key = (row.get("id") or "").strip()
        if not key and not (row.get("expected") or "").strip():
            continue  # a blank line
        if not key:
            raise ExpectationError(f"{source}, line {line}: empty id")
        if key in expected:
            raise ExpectationError(f"{source}, line {line}: id {key} is listed twice")
        expected[key] = _quantity(row.get("expected"), f"{source}, line {line}")
    return expected


def parse_metadata(text: str, source: str) -> int:
    """``EXPECTED_QUANTITY`` of one ABID metadata JSON document."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ExpectationError(f"{source}: not JSON ({e})") from e
    if not isinstance(data, dict) or METADATA_KEY not in data:
        raise ExpectationError(f"{source}: no {METADATA_KEY} (is this ABID metadata?)")
    return _quantity(data[METADATA_KEY], source)


def load_expected(path: str | Path) -> dict[str, int]:
    """Expectations from a CSV file (``id,expected``) or a folder of ABID metadata ``<id>.json``.

    Raises:
        ExpectationError: the path does not exist, the folder holds no JSON, or a file is malformed.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise ExpectationError(f"{path}: no ABID metadata <id>.json in this folder")
        return {f.stem: parse_metadata(f.read_text(encoding="utf-8"), str(f)) for f in files}
    if not path.is_file():
        raise ExpectationError(f"{path}: no such file or folder")
    return parse_expected_csv(path.read_text(encoding="utf-8"), str(path))


# --- reconciliation -------------------------------------------------------------------------------------------------


def reconcile(rows: Iterable[CountRow], expected: Mapping[str, int] | None) -> list[CountRow]:
    """The rows with their expectation (when there is one for the id)."""
    if not expected:
        return list(rows)
    return [replace(row, expected=expected.get(row.id)) for row in rows]


def summarize(rows: Sequence[CountRow], *, with_expectations: bool | None = None) -> dict[str, Any]:
    """``summary.json``: totals, and the accuracy against the expectations when there are any.

    ``with_expectations`` forces the expectation keys in (or out); by default they are there when a row has one.
    """
    summary: dict[str, Any] = {
        "n": len(rows),
        "counted": sum(row.error is None for row in rows),
        "needs_review": sum(bool(row.needs_review) for row in rows),
        "errors": sum(row.error is not None for row in rows),
    }
    checked = [row for row in rows if row.expected is not None]
    if with_expectations is None:
        with_expectations = bool(checked)
    if with_expectations:
        mismatched = [row.id for row in checked if not row.match]
        summary.update(
            expected=len(checked),
            matches=len(checked) - len(mismatched),
            accuracy=(len(checked) - len(mismatched)) / len(checked) if checked else None,
            mismatches=len(mismatched),
            mismatched_ids=mismatched[:MAX_LISTED_MISMATCHES],
        )
    return summary


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def counts_csv(rows: Iterable[CountRow]) -> str:
    """``counts.csv``'s text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            _cell(v) for v in (row.id, row.count, row.confidence, row.needs_review, row.expected, row.match, row.error)
        )
    return out.getvalue()


def read_counts_csv(text: str) -> list[CountRow]:
    """The rows of a ``counts.csv`` (the inverse of :func:`counts_csv`)."""

    def flag(value: str) -> bool | None:
        return None if value == "" else value == "true"

    return [
        CountRow(
            r["id"],
            count=int(r["count"]) if r["count"] else None,
            confidence=float(r["confidence"]) if r["confidence"] else None,
            needs_review=flag(r["needs_review"]),
            error=r["error"] or None,
            expected=int(r["expected"]) if r["expected"] else None,
        )
        for r in csv.DictReader(io.StringIO(text))
    ]


def summary_json(summary: Mapping[str, Any]) -> str:
    return json.dumps(summary, indent=2) + "\n"


def write_results(rows: Sequence[CountRow], out_dir: str | Path, *, with_expectations: bool | None = None) -> dict:
    """Write ``counts.csv`` and ``summary.json`` into ``out_dir``; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, with_expectations=with_expectations)
    (out / COUNTS_FILE).write_text(counts_csv(rows), encoding="utf-8")
    (out / SUMMARY_FILE).write_text(summary_json(summary), encoding="utf-8")
    return summary


def ordered_for_review(rows: Iterable[CountRow]) -> list[CountRow]:
    """Mismatches first, then errors, then answers that need review, then the rest (each group by id)."""

    def rank(row: CountRow) -> tuple[int, str]:
        if row.match is False and row.error is None:
            return 0, row.id
        if row.error is not None:
            return 1, row.id
        return (2 if row.needs_review else 3), row.id

    return sorted(rows, key=rank)


def format_summary(rows: Sequence[CountRow], summary: Mapping[str, Any], *, limit: int = 20) -> str:
    """A short text table for the terminal: the rows that want attention first, then the totals."""
    shown = ordered_for_review(rows)[:limit]
    table = [("id", "count", "expected", "conf", "review", "note")]
    for row in shown:
        note = row.error or ("MISMATCH" if row.match is False else "")
        table.append(
            (
                row.id,
                _cell(row.count),
                _cell(row.expected),
                "" if row.confidence is None else f"{row.confidence:.2f}",
                "yes" if row.needs_review else "",
                note,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in table]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows in {COUNTS_FILE}")
    totals = f"{summary['n']} photos: {summary['counted']} counted, {summary['errors']} errors, "
    totals += f"{summary['needs_review']} need review"
    if "accuracy" in summary:
        accuracy = "n/a" if summary["accuracy"] is None else f"{summary['accuracy']:.1%}"
        totals += f"; {summary['matches']}/{summary['expected']} match the expected quantity ({accuracy}), "
        totals += f"{summary['mismatches']} mismatches"
    return "\n".join([*(line.rstrip() for line in lines), totals])
