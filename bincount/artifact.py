"""The model artifact's ``code/`` folder: the inference handler and every project module it imports.

SageMaker's PyTorch inference container runs ``code/endpoint_inference.py`` (``SAGEMAKER_PROGRAM``) with ``code/``
on ``sys.path`` and installs ``code/requirements.txt`` if present. We copy the handler and follow its
``bincount`` imports (recursively), so the endpoint runs the very same model, transforms and labels as training.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import bincount

PACKAGE_DIR = Path(bincount.__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
HANDLER = PROJECT_ROOT / "inference" / "endpoint_inference.py"
HANDLER_REQUIREMENTS = PROJECT_ROOT / "inference" / "requirements.txt"
CODE_DIR = "code"


def project_imports(source: Path) -> set[str]:
    """Names of the ``bincount`` modules a file imports (``bincount.model`` -> ``model``)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "bincount" and len(parts) > 1 and (PACKAGE_DIR / f"{parts[1]}.py").is_file():
                found.add(parts[1])
    return found


def handler_modules(handler: Path = HANDLER) -> list[str]:
    """Every ``bincount`` module the handler needs, following imports of imports."""
    needed: set[str] = set()
    todo = list(project_imports(handler))
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(project_imports(PACKAGE_DIR / f"{name}.py"))
    return sorted(needed)


def package_code(model_dir: str | Path, handler: Path = HANDLER) -> Path:
    """Write ``<model_dir>/code/`` (replacing any old one) and return its path."""
    if not handler.is_file():
        raise FileNotFoundError(f"inference handler {handler} is missing from the source bundle")
    code = Path(model_dir) / CODE_DIR
    if code.exists():
        shutil.rmtree(code)
    (code / "bincount").mkdir(parents=True)
    shutil.copy2(handler, code / handler.name)
    shutil.copy2(PACKAGE_DIR / "__init__.py", code / "bincount" / "__init__.py")
    for name in handler_modules(handler):
        shutil.copy2(PACKAGE_DIR / f"{name}.py", code / "bincount" / f"{name}.py")
    if HANDLER_REQUIREMENTS.is_file():
        shutil.copy2(HANDLER_REQUIREMENTS, code / "requirements.txt")
    return code
