"""The checkout's root and its well-known folders, computed once.

The same relative layout holds in the checkout, in the training source bundle (the job's working directory) and
in the endpoint image (``/opt/bincount``): the package sits next to ``inference/`` (and, in the checkout, next to
``training/``, ``lambda/`` and ``data/``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
TRAINING_DIR = PROJECT_ROOT / "training"
INFERENCE_DIR = PROJECT_ROOT / "inference"
LAMBDA_DIR = PROJECT_ROOT / "lambda"
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
CDK_JSON = PROJECT_ROOT / "cdk.json"
HANDLER = INFERENCE_DIR / "endpoint_inference.py"
"""The inference handler (docs/design.md §4: its four functions), used by the artifact packer and ``bincount serve``."""
WEB_DIR = PACKAGE_DIR / "local" / "web"
