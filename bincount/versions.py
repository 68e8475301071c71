"""The framework versions the system runs on, named once (checked 2026-12-04; README "Containers").

- Training, tuning and feature extraction run on AWS's ``pytorch-training`` container 2.10 (py313): the one PyTorch
  training image in AWS's patch support (GA 2026-01-21, end of patch 2027-01-21).
- The endpoint runs the project's own image (``inference/Dockerfile``) with exactly the training container's torch
  and torchvision, CPU builds, from ``inference/serving-requirements.txt``; the development set-up installs the same
  file, so the tests run the framework that runs in AWS.
- ``servingImage: prebuilt`` falls back to AWS's last prebuilt PyTorch inference image, 2.6 (py312, TorchServe), out
  of patch since 2026-06-30.

Standard library only: the CDK app and the tests import it without torch. ``tests`` check the requirements file,
the installed packages and the synthesized images against these names.
"""

from __future__ import annotations

TORCH = "2.10.0"
TORCHVISION = "0.25.0"
TRAINING_FRAMEWORK = "2.10"
"""``pytorch-training`` image version (``image_uris.retrieve(framework="pytorch", version=...)``)."""
TRAINING_PY = "py313"
TRAINING_END_OF_PATCH = "2027-01-21"

PREBUILT_INFERENCE_FRAMEWORK = "2.6"
PREBUILT_INFERENCE_PY = "py312"
PREBUILT_INFERENCE_END_OF_PATCH = "2026-06-30"

SERVING_PYTHON = "3.11"
"""The endpoint image's Python (``python:3.11-slim`` base): the Python the tests run on."""
SUPPORTED_PYTHONS: tuple[str, ...] = ("3.11", "3.12", "3.13")
"""Shipped code runs from the development Python to the training container's."""
