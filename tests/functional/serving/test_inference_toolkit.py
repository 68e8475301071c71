"""The handler as the PyTorch inference container runs it: the artifact's ``code/``, driven by AWS's serving toolkit
(``sagemaker-pytorch-inference``'s HandlerService and ``sagemaker_inference``'s Transformer), so dispatch, content
types and error statuses are the container's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bincount.data.labels import COUNTS
from bincount.local.endpoint import ContainerModel
from bincount.model.network import MODEL_FILE, ModelMismatchError
from tests.support.serving import (
    BROKEN_PROGRAM,
    artifact_copy,
    broken_artifact,
    encode,
    photo,
    photo_bytes,
    png_header_only,
)


@pytest.fixture(scope="module")
def container(model_dir: Path) -> ContainerModel:
    return ContainerModel(model_dir, name="bincount")


def test_the_artifact_ships_its_handler_and_what_it_imports(model_dir: Path) -> None:
    code = model_dir / "code"
    assert (code / "endpoint_inference.py").is_file()
    shipped = {p.relative_to(code).as_posix() for p in (code / "bincount").rglob("*.py")}
    assert {
        "bincount/__init__.py",
        "bincount/serving/__init__.py",
        "bincount/serving/imaging.py",
        "bincount/serving/media.py",
        "bincount/model/__init__.py",
        "bincount/model/network.py",
        "bincount/data/transforms.py",
        "bincount/data/labels.py",
    } <= shipped
    assert "bincount/local/endpoint.py" not in shipped  # only what the handler needs


@pytest.mark.parametrize(
    ("body", "content_type", "accept"),
    [
        (photo_bytes(0), "image/jpeg", "application/json"),
        (encode(photo(0), "PNG"), "image/png", None),
        (photo_bytes(0), "application/x-image", "*/*"),
    ],
    ids=["jpeg", "png-no-accept", "x-image-any-accept"],
)
def test_images_are_counted(container: ContainerModel, body: bytes, content_type: str, accept) -> None:
    response = container.invoke(body, content_type, accept)
    assert response.status == 200
    assert response.content_type == "application/json"
    answer = json.loads(response.body)
    assert answer["count"] in COUNTS
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (photo_bytes(0), "text/plain", None, 415, "Content-Type 'text/plain' is not supported"),
        (photo_bytes(0), None, None, 415, "Content-Type '(none)' is not supported"),
        (b'{"a": 1}', "application/json", None, 415, "Content-Type 'application/json' is not supported"),
        (b"", "image/jpeg", None, 400, "the request body is empty"),
        (b"GIF89a not really", "image/jpeg", None, 400, "the body is not a JPEG or PNG image"),
        (png_header_only(9000, 9000), "image/png", None, 413, "9000x9000 = 81,000,000 pixels"),
        (photo_bytes(0), "image/jpeg", "text/csv", 406, "Accept 'text/csv' is not supported"),
    ],
    ids=["text", "no-type", "json", "empty", "not-image", "bomb", "accept-csv"],
)
def test_client_mistakes_come_back_as_their_4xx(
    container: ContainerModel, body: bytes, content_type, accept, status: int, message: str
) -> None:
    response = container.invoke(body, content_type, accept)
    assert response.status == status
    first_line = response.body.decode().splitlines()[0]
    assert message in first_line  # the toolkit sends "<message>\n<traceback>"


def test_a_crash_in_the_handler_is_a_500(model_dir: Path, tmp_path: Path) -> None:
    broken = ContainerModel(broken_artifact(model_dir, tmp_path / "broken"), program=BROKEN_PROGRAM)
    response = broken.invoke(photo_bytes(0), "image/jpeg")
    assert response.status == 500
    assert "boom" in response.body.decode()


def test_an_artifact_that_does_not_fit_fails_at_start_up(model_dir: Path, tmp_path: Path) -> None:
    artifact = artifact_copy(model_dir, tmp_path / "bad")
    state = torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    state["head.weight"], state["head.bias"] = state["head.weight"][:4], state["head.bias"][:4]
    (artifact / MODEL_FILE).unlink()
    torch.save(state, artifact / MODEL_FILE)
    with pytest.raises(ModelMismatchError, match=r"head\.weight: \(4, 2048\) in file"):
        ContainerModel(artifact)


def test_an_artifact_without_the_handler_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no code/endpoint_inference\.py"):
        ContainerModel(tmp_path)
