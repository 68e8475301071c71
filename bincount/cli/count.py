"""``bincount count`` (through the deployed API) and ``bincount invoke`` (straight to the SageMaker endpoint).

Both print one row per image, as a table or JSON, and exit 1 when any image failed (2 when not configured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bincount.serving.client import (
    API_KEY_ENV,
    API_URL_ENV,
    DEFAULT_STACK,
    ENDPOINT_ENV,
    STACK_ENV,
    TIMEOUT_S,
    ConfigError,
    ImageResult,
)

VIA_CHOICES = ("boto3", "sdk")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="JPEG or PNG files")
    p.add_argument("--stack", help=f"stack whose outputs to read (default: ${STACK_ENV} or {DEFAULT_STACK})")
    p.add_argument("--region", help="AWS region (default: boto3's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def add_count_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("count", help="count the objects in bin photos through the deployed API")
    _add_common(p)
    p.add_argument("--url", help=f"the API's base URL (default: ${API_URL_ENV}, else the stack's ApiUrl output)")
    p.add_argument("--api-key", help=f"the API key (default: ${API_KEY_ENV}, else the stack's ApiKeyId output)")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds per request (default: {TIMEOUT_S:g})")
    p.set_defaults(func=run_count)


def add_invoke_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("invoke", help="count the objects in bin photos by calling the SageMaker endpoint directly")
    _add_common(p)
    p.add_argument("--endpoint", help=f"the endpoint (default: ${ENDPOINT_ENV}, else the stack's EndpointName output)")
    p.add_argument(
        "--via",
        choices=VIA_CHOICES,
        default="boto3",
        help="the SageMaker Python SDK (sagemaker-core Endpoint.invoke) or plain boto3 (default: boto3)",
    )
    p.set_defaults(func=run_invoke)


def run_count(args: argparse.Namespace) -> int:
    from bincount.serving.client import ApiClient, count_images, resolve_api
    from bincount.serving.media import MAX_API_IMAGE_BYTES

    try:
        settings = resolve_api(args.url, args.api_key, stack=args.stack, region=args.region)
    except ConfigError as e:
        print(f"bincount count: {e}", file=sys.stderr)
        return 2
    client = ApiClient(settings, timeout=args.timeout)
    return _report(count_images(args.images, client.count, max_bytes=MAX_API_IMAGE_BYTES), as_json=args.json)


def run_invoke(args: argparse.Namespace) -> int:
    from bincount.serving.client import count_images, endpoint_caller, resolve_endpoint
    from bincount.serving.media import MAX_PAYLOAD_BYTES

    try:
        endpoint = resolve_endpoint(args.endpoint, stack=args.stack, region=args.region)
        call = endpoint_caller(endpoint, args.via, args.region)
    except ConfigError as e:
        print(f"bincount invoke: {e}", file=sys.stderr)
        return 2
    return _report(count_images(args.images, call, max_bytes=MAX_PAYLOAD_BYTES), as_json=args.json)


def _report(results: list[ImageResult], *, as_json: bool) -> int:
    from bincount.serving.client import format_table

    if as_json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_table(results))
    return 0 if all(r.ok for r in results) else 1
