"""The endpoint handler's four functions, called directly, against the artifact of a real training run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from sagemaker_inference.errors import BaseInferenceToolkitError

from bincount.data import transforms
from bincount.data.labels import COUNTS
from bincount.model.network import MODEL_FILE, ModelConfig, ModelMismatchError
from bincount.serving.imaging import RequestError
from bincount.serving.media import MAX_PAYLOAD_BYTES
from tests.support.serving import encode, import_handler, photo, photo_bytes, png_header_only

handler = import_handler("endpoint_inference_under_test")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> handler.ServingModel:
    return handler.model_fn(str(model_dir))


def assert_count_json(text: str) -> dict:
    """The JSON of docs/design.md §4."""
    answer = json.loads(text)
    assert answer["count"] in COUNTS and isinstance(answer["count"], int)
    assert set(answer["probabilities"]) == {str(c) for c in COUNTS}
    probabilities = answer["probabilities"]
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert answer["confidence"] == probabilities[str(answer["count"])] == max(probabilities.values())
    assert isinstance(answer["needs_review"], bool)
    return answer


def run(body: bytes, content_type: str, model: handler.ServingModel, accept: str = "application/json") -> dict:
    return assert_count_json(handler.output_fn(handler.predict_fn(handler.input_fn(body, content_type), model), accept))


# --- what it accepts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("JPEG", "application/x-image"),
        ("PNG", "application/x-image"),
        ("JPEG", "Image/JPEG; charset=binary"),
    ],
)
def test_real_photo_gives_a_count(fmt: str, content_type: str, model) -> None:
    body = photo_bytes(3) if fmt == "JPEG" else encode(photo(3), "PNG")
    run(body, content_type, model)


def test_same_pixels_same_answer_whatever_the_container(model) -> None:
    """A PNG holds the decoded JPEG's pixels exactly, so both must give the very same probabilities."""
    from_jpeg = run(photo_bytes(5), "image/jpeg", model)
    from_png = run(encode(photo(5), "PNG"), "image/png", model)
    assert from_png == from_jpeg


def test_predict_applies_the_evaluation_transforms_of_training(model) -> None:
    """The transform code of training, not a copy: the int8 path runs its 8-bit form
    (tests/unit/data/test_transforms.py keeps it within one grey level of ``eval_transform``, which the fp32 paths
    run: test_inference_fast.py)."""
    assert handler.eval_transform is transforms.eval_transform and handler.eval_batch is transforms.eval_batch
    assert model.path == handler.FAST_PATH and model.fast
    image = handler.input_fn(photo_bytes(7), "image/jpeg")
    with torch.no_grad():
        expected = torch.softmax(model.network(transforms.eval_batch(image)) / model.review.temperature, dim=1)[0]
    assert torch.allclose(handler.predict_fn(image, model), expected, atol=1e-6)


# --- conversions to upright RGB ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "L"), ("PNG", "P"), ("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "1")],
)
def test_every_mode_becomes_rgb(fmt: str, mode: str) -> None:
    source = photo(2).convert(mode)
    image = handler.input_fn(encode(source, fmt), f"image/{fmt.lower()}")
    assert image.mode == "RGB"
    assert image.size == source.size


def test_transparency_is_flattened_onto_white() -> None:
    clear = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # fully transparent black: plain convert() shows black
    half = Image.new("RGBA", (40, 30), (0, 0, 0, 128))
    assert handler.input_fn(encode(clear, "PNG"), "image/png").getpixel((5, 5)) == (255, 255, 255)
    assert handler.input_fn(encode(half, "PNG"), "image/png").getpixel((5, 5)) == (127, 127, 127)


def test_palette_transparency_is_flattened_onto_white() -> None:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    assert handler.input_fn(encode(img, "PNG", transparency=0), "image/png").getpixel((3, 3)) == (255, 255, 255)


def test_16_bit_grayscale_is_scaled_not_clipped() -> None:
    img = Image.new("I;16", (16, 16), 32768)  # mid-gray; convert("RGB") alone would clip it to white
    assert handler.input_fn(encode(img, "PNG"), "image/png").getpixel((0, 0)) == (128, 128, 128)


@pytest.mark.parametrize(
    ("orientation", "transpose"), [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270)]
)
def test_exif_orientation_is_honoured(orientation: int, transpose: Image.Transpose) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = encode(photo(4), "JPEG", exif=exif, quality=95)
    with Image.open(io.BytesIO(body)) as stored:  # the pixels as stored, before any rotation
        expected = stored.convert("RGB").transpose(transpose)
    image = handler.input_fn(body, "image/jpeg")
    assert image.size == expected.size
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    assert ImageOps.exif_transpose(image).size == image.size  # nothing left to rotate


# --- refusals: a toolkit error with a 4xx status and a message naming what was wrong ----------------------------


def _refusals() -> list:
    jpeg = photo_bytes(1)
    return [
        pytest.param("text/plain", jpeg, 415, "'text/plain' is not supported", id="other-type"),
        pytest.param(None, jpeg, 415, "'(none)' is not supported", id="no-type"),
        pytest.param("application/json", '{"image": 1}', 415, "'application/json'", id="json-decoded-by-toolkit"),
        pytest.param("image/jpeg", b"", 400, "body is empty", id="empty"),
        pytest.param("image/jpeg", b"hello, world", 400, "not a JPEG or PNG image", id="text"),
        pytest.param("image/png", encode(photo(1), "GIF"), 400, "not a JPEG or PNG image", id="gif"),
        pytest.param("image/jpeg", jpeg[: len(jpeg) // 2], 400, "JPEG image data is truncated or corrupt", id="cut"),
        pytest.param("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 400, "header is corrupt", id="bad-header"),
        pytest.param("image/jpeg", b"\xff\xd8\xff" + b"\0" * MAX_PAYLOAD_BYTES, 413, "limit is 6,291,456", id="6MB"),
        pytest.param("image/png", png_header_only(8000, 8000), 413, "8000x8000 = 64,000,000 pixels", id="bomb"),
        pytest.param("image/png", png_header_only(20000, 20000), 413, "too many pixels", id="pillow-bomb"),
    ]


@pytest.mark.parametrize(("content_type", "body", "status", "message"), _refusals())
def test_refusals_name_what_was_wrong(content_type, body, status: int, message: str) -> None:
    with pytest.raises(RequestError) as caught:
        handler.input_fn(body, content_type)
    error = caught.value
    assert isinstance(error, BaseInferenceToolkitError), "only the toolkit's own errors become 4xx in the container"
    assert error.status_code == status
    assert message in error.message
    assert str(error) == error.message


@pytest.mark.parametrize(
    "accept", ["application/json", "*/*", "", None, "application/json; charset=utf-8", "text/html, application/*"]
)
def test_json_is_answered_to_any_accept_that_allows_it(accept) -> None:
    answer = json.loads(handler.output_fn(torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1]), accept))
    assert answer["count"] == 3
    assert answer["confidence"] == pytest.approx(0.4)
    assert answer["needs_review"] is True  # a bare tensor: the default policy, 0.4 < DEFAULT_THRESHOLD


def test_other_accept_is_refused_with_406() -> None:
    with pytest.raises(RequestError, match="'text/csv' is not supported") as caught:
        handler.output_fn(torch.tensor([0.2] * 5), "text/csv")
    assert caught.value.status_code == 406


# --- model_fn fails at load when the artifact does not fit ---------------------------------------------------------


def _artifact_with(model_dir: Path, tmp_path: Path, state: dict, config: ModelConfig | None = None) -> Path:
    out = tmp_path / "artifact"
    out.mkdir()
    torch.save(state, out / MODEL_FILE)
    if config is not None:
        config.save(out)
    else:
        shutil.copy2(model_dir / "model_config.json", out / "model_config.json")
    return out


@pytest.fixture(scope="module")
def trained_state(model_dir: Path) -> dict:
    return torch.load(model_dir / MODEL_FILE, map_location="cpu", weights_only=True)


def test_model_fn_refuses_a_wrong_class_count(model_dir, trained_state, tmp_path) -> None:
    state = dict(
        trained_state, **{"head.weight": trained_state["head.weight"][:3], "head.bias": trained_state["head.bias"][:3]}
    )
    with pytest.raises(ModelMismatchError, match=r"head\.weight: \(3, 2048\) in file, \(5, 2048\) in network"):
        handler.model_fn(str(_artifact_with(model_dir, tmp_path, state)))


def test_model_fn_refuses_a_wrong_head(model_dir, trained_state, tmp_path) -> None:
    state = {k: v for k, v in trained_state.items() if not k.startswith("head.")}
    state.update(
        {
            "head.0.weight": torch.zeros(256, 2048),
            "head.0.bias": torch.zeros(256),
            "head.3.weight": torch.zeros(5, 256),
            "head.3.bias": torch.zeros(5),
        }
    )
    with pytest.raises(ModelMismatchError, match=r"missing keys: head\.bias, head\.weight.*unexpected keys: head\.0"):
        handler.model_fn(str(_artifact_with(model_dir, tmp_path, state)))


def test_model_fn_refuses_a_network_that_does_not_predict_five_counts(model_dir, trained_state, tmp_path) -> None:
    """A consistent artifact (config and weights agree) for 3 classes still cannot serve counts 1..5."""
    state = dict(
        trained_state, **{"head.weight": trained_state["head.weight"][:3], "head.bias": trained_state["head.bias"][:3]}
    )
    with pytest.raises(ModelMismatchError, match=r"predicts 3 classes: the endpoint serves counts 1\.\.5"):
        handler.model_fn(str(_artifact_with(model_dir, tmp_path, state, ModelConfig(num_classes=3))))


def test_model_fn_without_weights_says_so(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no model\.pth"):
        handler.model_fn(str(tmp_path))
