"""The import rule of the layout (docs/design.md §1): what stacks/ and the Lambda load stays free of torch, the
package never imports stacks/, and no module (nor subpackage) imports itself back through others."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bincount.paths import PACKAGE_DIR, PROJECT_ROOT

IMPORT_LIGHT = (
    "bincount",
    "bincount.versions",
    "bincount.paths",
    "bincount.logs",
    "bincount.data",
    "bincount.data.manifest",
    "bincount.data.full_manifest",
    "bincount.training",
    "bincount.training.metrics",
    "bincount.training.tuning",
    "bincount.serving",
    "bincount.serving.media",
    "bincount.serving.reconcile",
    "bincount.serving.review",
    "bincount.cloud",
    "bincount.cli",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (anywhere in it, except under ``if TYPE_CHECKING:``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for child in node.body
        for n in ast.walk(child)
    }
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_back() -> None:
    graph = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}
    assert _cycle(graph) is None


def test_no_subpackage_imports_itself_back() -> None:
    """Between the subpackages the dependencies run one way (cli -> local -> training -> model -> data -> serving's
    media and imaging, for example), never in a circle."""

    def area(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE_DIR / parts[1]).is_dir() else "bincount"

    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue  # a package's lazy exports name its own modules
        graph.setdefault(area(name), set()).update(
            area(m) for m in _imports(path) if m in MODULES and area(m) not in (area(name), "bincount")
        )
    assert _cycle(graph) is None


def test_the_package_never_imports_stacks() -> None:
    offenders = {name for name, path in MODULES.items() if any(m.split(".")[0] == "stacks" for m in _imports(path))}
    assert not offenders


def test_the_subpackages_are_where_layout_says() -> None:
    assert {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()} == {
        "data",
        "model",
        "training",
        "serving",
        "local",
        "cli",
        "cloud",
    }


PROBE = """
import json, sys
sys.path.insert(0, {root!r})
import importlib
for name in {modules!r}:
    importlib.import_module(name)
import app  # the CDK app: every stacks/ module
import stacks.pipeline.construct, stacks.pipeline.definition
from bincount.local.api import load_lambda_module
load_lambda_module()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "PIL", "numpy"))))
"""


@pytest.mark.timeout(300)
def test_stacks_and_the_lambda_load_no_torch() -> None:
    """What stacks/ (the CDK app) and the Lambda tests import must not pull in torch: synthesis and the Lambda's
    tests stay fast, and the Lambda folder is deployed alone."""
    probe = PROBE.format(root=str(PROJECT_ROOT), modules=IMPORT_LIGHT)
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert not [m for m in heavy if m.split(".")[0] in ("torch", "torchvision")], heavy
