"""The ``bincount`` command line. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from bincount import __version__

# (module, function) pairs: each function adds one sub-command to the parser and sets ``func`` on it.
# Command modules keep their heavy imports (torch, boto3) inside the command, so `bincount --help` stays fast.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("bincount.cli.up", "add_up_command"),
    ("bincount.cli.train", "add_train_command"),
    ("bincount.cli.count", "add_count_command"),
    ("bincount.cli.count", "add_invoke_command"),
    ("bincount.cli.cost", "add_cost_command"),
    ("bincount.cli.deploy", "add_deploy_command"),
    ("bincount.cli.captured", "add_captured_command"),
    ("bincount.cli.serve", "add_serve_command"),
    ("bincount.cli.batch", "add_batch_command"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bincount", description="Count the objects in warehouse bin photos.")
    parser.add_argument("--version", action="version", version=f"bincount {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name, function_name in COMMANDS:
        module = __import__(module_name, fromlist=[function_name])
        add: Callable[[argparse._SubParsersAction], None] = getattr(module, function_name)
        add(sub)
    return parser


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # stop as on Ctrl-C: child processes and servers are shut down cleanly


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
