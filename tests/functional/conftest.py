"""Fixtures of the functional tests: one real trained artifact (a real training run on the vendored photos), and a
local SageMaker endpoint serving it (``bincount serve``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bincount.local.endpoint import Endpoint, LocalSageMaker, ServedModel
from bincount.training.jobs import JobResult, run_job
from tests.support.serving import ENDPOINT
from tests.support.training import FAST_HYPERPARAMETERS


@pytest.fixture(scope="session")
def trained_job(channels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    """One real run of training/train_model.py (random init, 1 epoch): its artifact serves the serving tests."""
    result = run_job("train_model.py", channels, tmp_path_factory.mktemp("trained"), FAST_HYPERPARAMETERS)
    assert result.returncode == 0, result.log[-3000:]
    return result


@pytest.fixture(scope="session")
def model_dir(trained_job: JobResult) -> Path:
    """A model artifact directory (model.pth, model_config.json, code/) produced by train_model.py."""
    return trained_job.model_dir


@pytest.fixture(scope="session")
def served_model(model_dir: Path) -> Iterator[ServedModel]:
    """``bincount serve`` (the endpoint image's server) serving the trained artifact in its own process."""
    model = ServedModel(model_dir, name=ENDPOINT)
    yield model
    model.close()


@pytest.fixture(scope="module")
def sagemaker(served_model: ServedModel) -> Iterator[LocalSageMaker]:
    """A local SageMaker runtime (loopback HTTP) serving the trained artifact as the endpoint ``ENDPOINT`` through
    ``bincount serve``; test modules that need other endpoints beside it define their own."""
    with LocalSageMaker([Endpoint(ENDPOINT, served_model)]) as server:
        yield server
