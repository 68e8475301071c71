"""``report.html``: one self-contained page per final job (docs/design.md §9).

Loss curves and the confusion matrix (the PNGs that bincount.training.plots wrote, inlined as base64), the test numbers,
every rule's status and the profile. No external URL: the page opens from the unpacked output.tar.gz, offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bincount.training.diagnostics import ISSUES_FOUND, RULES

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f4f4f4; text-align: left; } .issue { color: #b00020; font-weight: bold; } .ok { color: #1b7a1b; }
img { max-width: 100%; } pre { background: #f8f8f8; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p>({html.escape(alt)}: no plot)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(
            "<tr>"
            + "".join(f"<td{css if j == 1 else ''}>{html.escape(str(v))}</td>" for j, v in enumerate(row))
            + "</tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _review_section(review: Mapping[str, Any] | None) -> list[str]:
    """Calibration and the review trade-off: what the threshold chosen on validation accepts on the test set."""
    if not review:
        return []

    def num(value: Any) -> Any:
        return "n/a" if value is None else round(value, 4) if isinstance(value, float) else value

    rows = [
        ("temperature (fitted on validation)", num(review.get("temperature"))),
        ("review threshold (confidence below it: needs_review)", num(review.get("threshold"))),
        ("target accuracy of accepted answers (validation)", num(review.get("target_accuracy"))),
        ("calibration error (ECE), test, before scaling", num(review.get("ece_before"))),
        ("calibration error (ECE), test, after scaling", num(review.get("ece_after"))),
    ]
    for split in ("valid", "test"):
        part = review.get(split) or {}
        rows += [
            (f"{split}: share of photos accepted", num(part.get("accepted_share"))),
            (f"{split}: accuracy of the accepted photos", num(part.get("accepted_accuracy"))),
            (f"{split}: accuracy of all photos", num(part.get("accuracy"))),
        ]
    note = (
        '<p class="issue">No threshold reached the target on validation: every answer goes to review.</p>'
        if review.get("review_all")
        else ""
    )
    return ["<h2>Review</h2>", note, _table(("measure", "value"), rows)]


def render_report(
    evaluation: Mapping[str, Any], diagnostics: Mapping[str, Any], plots: Mapping[str, Path], *, title: str
) -> str:
    """The page's HTML."""
    rules = diagnostics.get("rules", {})
    rule_rows, classes = [], []
    for spec in RULES:
        result = rules.get(spec.name, {})
        status = result.get("status", "not evaluated")
        epoch = result.get("epoch")
        rule_rows.append((spec.name, status, "" if epoch is None else epoch, spec.summary, result.get("detail", "")))
        classes.append("issue" if status == ISSUES_FOUND else "ok")
    issues = [row[0] for row in rule_rows if row[1] == ISSUES_FOUND]
    profile = diagnostics.get("profile", {})
    summary_rows = [
        (key, profile[key])
        for key in (
            "images_per_second",
            "data_seconds",
            "compute_seconds",
            "peak_memory_mb",
            "peak_cuda_memory_mb",
            "images",
            "device",
        )
        if key in profile
    ]
    epoch_rows = [
        (e["epoch"], e["images"], e["images_per_second"], e["data_seconds"], e["compute_seconds"])
        for e in profile.get("epochs", [])
    ]
    operator_rows = [
        (o["name"], o["calls"], o["self_cpu_ms"], o["cpu_total_ms"]) for o in profile.get("top_operators", [])
    ]
    per_class = evaluation.get("per_class_accuracy", {})
    test_rows = [(k, evaluation[k]) for k in ("accuracy", "rmse", "mae", "n_test") if k in evaluation] + [
        (f"accuracy, {count} objects", "n/a" if value is None else round(value, 4))
        for count, value in per_class.items()
    ]
    verdict = (
        f'<p class="issue">Issues found by: {html.escape(", ".join(issues))}</p>'
        if issues
        else '<p class="ok">No rule found an issue.</p>'
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Rules</h2>",
        verdict,
        _table(("rule", "status", "epoch", "watches for", "detail"), rule_rows, classes),
        "<h2>Loss curves</h2>",
        _image(plots["loss"], "loss curves"),
        "<h2>Test set</h2>",
        _table(("metric", "value"), test_rows),
        _image(plots["confusion"], "confusion matrix"),
        *_review_section(evaluation.get("review")),
        "<h2>Profile</h2>",
        _table(("measure", "value"), summary_rows),
        _table(("epoch", "images", "images/s", "data loading s", "compute s"), epoch_rows),
    ]
    if operator_rows:
        trace = profile.get("trace") or ""
        parts += [
            f"<h3>Top operators of the traced steps (Chrome trace: {html.escape(trace)}, open in "
            "chrome://tracing or Perfetto)</h3>",
            _table(("operator", "calls", "self CPU ms", "CPU total ms"), operator_rows),
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    output_dir: str | Path,
    evaluation: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    plots: Mapping[str, Path],
    *,
    title: str = "bincount training report",
) -> Path:
    path = Path(output_dir) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(evaluation, diagnostics, plots, title=title), encoding="utf-8")
    return path
