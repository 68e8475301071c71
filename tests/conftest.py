"""Fixtures for every test folder: the vendored real photos in the channel layout. Each folder's conftest.py adds its
own (tests/functional/conftest.py: one real trained artifact and a local SageMaker endpoint serving it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bincount.data.sample import sample_dataset


@pytest.fixture(scope="session")
def channels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train/valid/test folders of the 50 vendored ABID photos (30/10/10)."""
    return sample_dataset(tmp_path_factory.mktemp("dataset"))
