"""``bincount batch``: count a shift's photos and reconcile them with the expected quantities (docs/design.md §11).

Writes ``OUT/counts.csv`` and ``OUT/summary.json``, draws a progress bar on stderr and prints a short table (the
mismatches first). Exit code 0 when every photo was counted, 1 when some could not be, 2 on a usage problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bincount.serving.batch import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS
from bincount.serving.client import API_KEY_ENV, TIMEOUT_S, ConfigError

if TYPE_CHECKING:
    from bincount.serving.batch import LocalCounter, RemoteCounter


def add_batch_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="count every photo of files/folders, write counts.csv and summary.json, reconcile with --expected",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders of JPEG/PNG photos")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="DIR", help="a model artifact folder: count on this machine")
    source.add_argument("--endpoint", metavar="NAME", help="the SageMaker endpoint to call (sagemaker-runtime)")
    source.add_argument("--url", help=f"the API's base URL (the key: --api-key or ${API_KEY_ENV})")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where counts.csv and summary.json go")
    p.add_argument(
        "--expected", type=Path, metavar="CSV_OR_DIR", help="a CSV id,expected or a folder of ABID metadata <id>.json"
    )
    p.add_argument("--api-key", help=f"the API key with --url (default: ${API_KEY_ENV})")
    p.add_argument("--region", help="AWS region with --endpoint (default: boto3's)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"photos per pass (default: {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"decoding threads, or requests at once with --endpoint/--url (default: {DEFAULT_WORKERS})",
    )
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds per API request (default: {TIMEOUT_S:g})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_batch)


def _counter(args: argparse.Namespace) -> LocalCounter | RemoteCounter:
    from bincount.serving.batch import LocalCounter, RemoteCounter

    if args.model is not None:
        return LocalCounter(args.model, batch_size=args.batch_size, workers=args.workers)
    if args.endpoint is not None:
        from bincount.serving.client import endpoint_caller
        from bincount.serving.media import MAX_PAYLOAD_BYTES

        call = endpoint_caller(args.endpoint, "boto3", args.region)
        return RemoteCounter(call, max_bytes=MAX_PAYLOAD_BYTES, workers=args.workers)
    from bincount.serving.client import ApiClient, resolve_api
    from bincount.serving.media import MAX_API_IMAGE_BYTES

    settings = resolve_api(args.url, args.api_key, region=args.region)
    client = ApiClient(settings, timeout=args.timeout)
    return RemoteCounter(client.count, max_bytes=MAX_API_IMAGE_BYTES, workers=args.workers)


def run_batch(args: argparse.Namespace) -> int:
    from bincount.serving.batch import Progress, count_photos, list_photos
    from bincount.serving.reconcile import ExpectationError, format_summary, load_expected, reconcile, write_results

    if args.batch_size < 1 or args.workers < 1:
        print("bincount batch: --batch-size and --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        photos = list_photos(args.inputs)
        expected = load_expected(args.expected) if args.expected else None
        counter = _counter(args)
    except (FileNotFoundError, ExpectationError, ConfigError, ValueError) as e:
        print(f"bincount batch: {e}", file=sys.stderr)
        return 2
    if not photos:
        print("bincount batch: no JPEG or PNG photo in the inputs", file=sys.stderr)
        return 2
    progress = Progress(0 if args.quiet else len(photos))
    rows = count_photos(counter, photos, None if args.quiet else progress.advance)
    progress.close()
    rows = reconcile(rows, expected)
    summary = write_results(rows, args.out, with_expectations=expected is not None)
    print(format_summary(rows, summary))
    print(f"wrote {args.out / 'counts.csv'} and {args.out / 'summary.json'}")
    if expected is not None:
        unknown = sorted(set(expected) - {row.id for row in rows})
        if unknown:
            print(f"{len(unknown)} expected ids had no photo: {json.dumps(unknown[:10])[1:-1]}", file=sys.stderr)
    return 0 if summary["errors"] == 0 else 1
