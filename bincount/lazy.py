"""Lazy re-exports for the subpackages' ``__init__``: ``from bincount.data import ChannelDataset`` works, yet
importing ``bincount.data`` (as stacks/ and the Lambda tests do for ``bincount.data.manifest``) loads no torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to its submodule."""

    def __getattr__(name: str) -> Any:  # noqa: N807 (the module attribute hook's name)
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(exports)

    return __getattr__, __dir__
