"""``bincount deploy --version N``: deploy an approved version of the stack's model package group.

Starts the deployment state machine (the stack's ``DeployStateMachineArn`` output) with
``{"modelPackageVersion": N}`` plus any ``--set key=value`` deployment setting (minInstances, maxInstances,
dataCapturePercent, endpointInstanceType...), prints the execution and, with ``--wait``, waits for the outcome
(exit 0 deployed, 1 failed: rolled back, not approved..., 2 not configured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bincount.serving.client import DEFAULT_STACK, STACK_ENV, ConfigError

POLL_SECONDS = 15.0
DEPLOY_OUTPUT = "DeployStateMachineArn"


def add_deploy_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="deploy an approved model version to the endpoint (blue/green, rolled back on alarms)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument("--version", type=int, help="model package version (default: the newest approved one)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a deployment setting for this deployment (JSON value), e.g. --set maxInstances=3",
    )
    p.add_argument("--wait", action="store_true", help="wait for the deployment's outcome")
    p.add_argument("--stack", help=f"stack whose outputs to read (default: ${STACK_ENV} or {DEFAULT_STACK})")
    p.add_argument("--region", help="AWS region (default: boto3's)")
    p.set_defaults(func=run_deploy)


def deployment_input(version: int | None, pairs: list[str]) -> dict[str, Any]:
    """The execution input: the version (none: the newest approved) and the settings, values parsed as JSON."""
    found: dict[str, Any] = {} if version is None else {"modelPackageVersion": version}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            found[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            found[key.strip()] = raw
    return found


def start_deployment(
    sfn: Any, state_machine_arn: str, execution_input: dict[str, Any], *, name: str | None = None
) -> str:
    """Start the deployment; returns the execution's ARN."""
    kwargs = {"name": name} if name else {}
    return sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps(execution_input), **kwargs)[
        "executionArn"
    ]


def wait_for(
    sfn: Any, execution_arn: str, *, sleep: Callable[[float], None] = time.sleep, poll: float | None = None
) -> dict[str, Any]:
    """DescribeExecution once the execution is no longer RUNNING (polled every ``poll``, default POLL_SECONDS)."""
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        sleep(POLL_SECONDS if poll is None else poll)
    return described


def run_deploy(args: argparse.Namespace) -> int:
    import os

    import boto3

    from bincount.serving.client import output, stack_outputs

    stack = args.stack or os.environ.get(STACK_ENV) or DEFAULT_STACK
    try:
        execution_input = deployment_input(args.version, args.set)
        outputs = stack_outputs(boto3.client("cloudformation", region_name=args.region), stack)
        state_machine = output(outputs, stack, DEPLOY_OUTPUT)
    except ConfigError as e:
        print(f"bincount deploy: {e}", file=sys.stderr)
        return 2
    sfn = boto3.client("stepfunctions", region_name=args.region)
    arn = start_deployment(sfn, state_machine, execution_input)
    print(f"deployment started: {arn}")
    if not args.wait:
        return 0
    described = wait_for(sfn, arn)
    if described["status"] == "SUCCEEDED":
        print(json.dumps(json.loads(described.get("output") or "{}"), indent=2))
        return 0
    print(f"deployment {described['status']}: {described.get('error')}: {described.get('cause')}", file=sys.stderr)
    return 1
