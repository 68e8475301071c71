"""``bincount captured``: list or download what the endpoint captured (setting ``dataCapturePercent``).

SageMaker writes JSON Lines under ``s3://<bucket>/capture/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/``: one record
per captured request, its ``captureData.endpointInput`` (the photo, base64) and ``endpointOutput`` (the JSON answer).
``--download DIR`` writes each photo as ``DIR/<event id>.jpg|png`` with ``DIR/<event id>.json`` holding the answer
(count, confidence, needs_review): new training material once a person checks the counts.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bincount.serving.client import DEFAULT_STACK, STACK_ENV, ConfigError

CAPTURE_PREFIX = "capture/"  # stacks.storage.CAPTURE_PREFIX (bincount does not import stacks)
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "application/x-image": ".jpg"}


@dataclass(frozen=True)
class Captured:
    """One captured request and the endpoint's answer."""

    event_id: str
    time: str
    content_type: str
    photo: bytes
    answer: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "time": self.time,
            "contentType": self.content_type,
            "bytes": len(self.photo),
            **(
                {"count": self.answer.get("count"), "needs_review": self.answer.get("needs_review")}
                if self.answer
                else {}
            ),
        }


def _decode(data: dict[str, Any]) -> bytes:
    text = data.get("data", "")
    return base64.b64decode(text) if data.get("encoding", "").upper() == "BASE64" else text.encode()


def parse_records(lines: str) -> Iterator[Captured]:
    """The records of one capture file (JSON Lines)."""
    for line in lines.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        data = record.get("captureData", {})
        request = data.get("endpointInput", {})
        response = data.get("endpointOutput")
        answer = None
        if response:
            try:
                answer = json.loads(_decode(response))
            except ValueError:
                answer = None
        metadata = record.get("eventMetadata", {})
        yield Captured(
            event_id=metadata.get("eventId", ""),
            time=metadata.get("inferenceTime", ""),
            content_type=request.get("observedContentType", ""),
            photo=_decode(request),
            answer=answer,
        )


def captured(s3: Any, bucket: str, endpoint: str) -> Iterator[Captured]:
    """Every captured record of the endpoint, oldest file first."""
    paginator = s3.get_paginator("list_objects_v2")
    keys = [
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{CAPTURE_PREFIX}{endpoint}/")
        for o in page.get("Contents", [])
        if o["Key"].endswith(".jsonl")
    ]
    for key in sorted(keys):
        yield from parse_records(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def download(records: Iterator[Captured], folder: Path) -> int:
    """Write each photo and its answer into ``folder``; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for record in records:
        name = record.event_id or f"record-{written}"
        (folder / f"{name}{EXTENSIONS.get(record.content_type, '.bin')}").write_bytes(record.photo)
        (folder / f"{name}.json").write_text(json.dumps(record.answer, indent=2), encoding="utf-8")
        written += 1
    return written


def add_captured_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "captured",
        help="list or download the requests and answers the endpoint captured (dataCapturePercent > 0)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--download", type=Path, metavar="DIR", help="write the photos and answers into DIR")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--stack", help=f"stack whose outputs to read (default: ${STACK_ENV} or {DEFAULT_STACK})")
    p.add_argument("--region", help="AWS region (default: boto3's)")
    p.set_defaults(func=run_captured)


def run_captured(args: argparse.Namespace) -> int:
    import os

    import boto3

    from bincount.serving.client import output, stack_outputs

    stack = args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK
    try:
        outputs = stack_outputs(boto3.client("cloudformation", region_name=args.region), stack)
        bucket, endpoint = output(outputs, stack, "BucketName"), output(outputs, stack, "EndpointName")
    except ConfigError as e:
        print(f"bincount captured: {e}", file=sys.stderr)
        return 2
    records = captured(boto3.client("s3", region_name=args.region), bucket, endpoint)
    if args.download:
        print(f"{download(records, args.download)} captured requests written to {args.download}")
        return 0
    for record in records:
        row = record.summary()
        print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0
