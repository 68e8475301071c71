"""The Batch state machine's Reconcile step: the transform's answers and the expected CSV -> counts.csv and
summary.json beside the transform output (docs/design.md §11).

Packed alone with :mod:`bincount.serving.reconcile` (pure Python) and run on the Lambda runtime's boto3: the very code
that ``bincount batch`` runs on a laptop. Event: ``{"input": "s3://b/prefix/", "expected": "s3://b/e.csv" or "",
"output": "s3://data/batch-output/<job>/", "jobName": "<job>"}``. Returns the summary, with where the files are."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.exceptions import ClientError

from bincount.serving.reconcile import (
    COUNTS_FILE,
    SUMMARY_FILE,
    CountRow,
    counts_csv,
    parse_expected_csv,
    photo_id,
    reconcile,
    summarize,
    summary_json,
)

log = logging.getLogger()
log.setLevel(logging.INFO)
READERS = 16
OUTPUT_SUFFIX = ".out"
NO_ANSWER = "no answer in the transform output"


class BadRequest(ValueError):
    """The event does not name valid S3 locations."""


@functools.cache
def s3() -> Any:
    return boto3.client("s3")


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not isinstance(url, str) or not url.startswith("s3://") or "/" not in url[5:]:
        raise BadRequest(f"not an s3://bucket/key URL: {url!r}")
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def list_keys(bucket: str, prefix: str) -> Iterator[str]:
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield item["Key"]


def answer_row(key: str, input_prefix: str, out_bucket: str, out_prefix: str) -> CountRow:
    """The row of one photo from its ``<key>.out``: the handler's JSON, or why there is none."""
    pid = photo_id(key)
    out_key = out_prefix + key[len(input_prefix) :] + OUTPUT_SUFFIX
    try:
        body = s3().get_object(Bucket=out_bucket, Key=out_key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return CountRow(pid, error=NO_ANSWER)
        raise
    try:
        return CountRow.from_answer(pid, json.loads(body))
    except ValueError as e:
        return CountRow(pid, error=str(e)[:300])


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    in_bucket, in_prefix = split_url(event["input"])
    out_bucket, out_prefix = split_url(event["output"])
    out_prefix = out_prefix if out_prefix.endswith("/") else out_prefix + "/"
    keys = sorted(list_keys(in_bucket, in_prefix))
    with ThreadPoolExecutor(READERS) as pool:
        rows = list(pool.map(lambda key: answer_row(key, in_prefix, out_bucket, out_prefix), keys))
    expected_url = event.get("expected") or ""
    expected = None
    if expected_url:
        bucket, key = split_url(expected_url)
        text = s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        expected = parse_expected_csv(text, expected_url)
    rows = reconcile(rows, expected)
    summary = summarize(rows, with_expectations=expected is not None)
    s3().put_object(
        Bucket=out_bucket, Key=out_prefix + COUNTS_FILE, Body=counts_csv(rows).encode(), ContentType="text/csv"
    )
    s3().put_object(
        Bucket=out_bucket,
        Key=out_prefix + SUMMARY_FILE,
        Body=summary_json(summary).encode(),
        ContentType="application/json",
    )
    log.info("%s: %s", event.get("jobName"), json.dumps(summary))
    base = f"s3://{out_bucket}/{out_prefix}"
    return {**summary, "counts": base + COUNTS_FILE, "summary": base + SUMMARY_FILE, "jobName": event.get("jobName")}
