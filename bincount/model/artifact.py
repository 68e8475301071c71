"""The model artifact's ``code/`` folder: the inference handler and every project module it imports.

SageMaker's PyTorch inference container runs ``code/endpoint_inference.py`` (``SAGEMAKER_PROGRAM``) with ``code/``
on ``sys.path`` and installs ``code/requirements.txt`` if present. We copy the handler and follow its
``bincount`` imports (recursively, with each package's ``__init__.py``), so the endpoint runs the very same
model, transforms and labels as training.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from bincount.paths import HANDLER, INFERENCE_DIR, PACKAGE_DIR

HANDLER_REQUIREMENTS = INFERENCE_DIR / "requirements.txt"
CODE_DIR = "code"


def _module_file(name: str) -> Path | None:
    """The file of project module ``name`` (``bincount.model.network``), or None if it is not one."""
    parts = name.split(".")
    if parts[0] != "bincount":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module, except those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found.extend(_runtime_imports(ast.Module(body=node.orelse, type_ignores=[])))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        else:
            found.extend(_runtime_imports(node))
    return found


def project_imports(source: Path) -> set[Path]:
    """The project files a file imports, with the ``__init__.py`` of every package on the way
    (``bincount.model.network`` -> ``bincount/__init__.py``, ``bincount/model/__init__.py``, ``.../network.py``)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: set[Path] = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                path = _module_file(".".join(parts[:end]))
                if path is not None:
                    found.add(path)
    return found


def handler_modules(handler: Path = HANDLER) -> list[str]:
    """Every project file the handler needs (paths relative to the package's parent), following imports of imports."""
    needed: set[Path] = set()
    todo = list(project_imports(handler))
    while todo:
        path = todo.pop()
        if path not in needed:
            needed.add(path)
            todo.extend(project_imports(path))
    return sorted(str(path.relative_to(PACKAGE_DIR.parent)) for path in needed)


def package_code(model_dir: str | Path, handler: Path = HANDLER) -> Path:
    """Write ``<model_dir>/code/`` (replacing any old one) and return its path."""
    if not handler.is_file():
        raise FileNotFoundError(f"inference handler {handler} is missing from the source bundle")
    code = Path(model_dir) / CODE_DIR
    if code.exists():
        shutil.rmtree(code)
    code.mkdir(parents=True)
    shutil.copy2(handler, code / handler.name)
    for name in handler_modules(handler):
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE_DIR.parent / name, code / name)
    if HANDLER_REQUIREMENTS.is_file():
        shutil.copy2(HANDLER_REQUIREMENTS, code / "requirements.txt")
    return code
