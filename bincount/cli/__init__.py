"""The ``bincount`` command line: one module per command, wired together in :mod:`bincount.cli.main`."""

from bincount.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
