"""The endpoint's fast path (int8 backbone) against its exact fp32 path (BINCOUNT_REFERENCE=1),
on the real vendored photos and the artifact of a real training run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from bincount.data import load_rgb
from bincount.model import ModelMismatchError, load_model
from bincount.quantize import ENGINE, INT8_CHECK, INT8_FILE, INT8_META, MIN_CHECK_COSINE
from bincount.transforms import eval_transform
from tests.serving_helpers import PHOTOS, import_handler, photo_bytes

# Per-photo agreement of the backbone's 2048 features, int8 against fp32 (cosine similarity). Post-training static
# int8 quantisation of ResNet-50 keeps features at cosine ~0.999 (measured here: ~0.9995 on the vendored photos);
# an uncalibrated or mis-normalised int8 graph falls far below.
MIN_FEATURE_COSINE = 0.99
# Counts: the target is >= 98% identical on real photos. With the random-init backbone of the offline tests
# the head's logits are huge and close together, so this is weak evidence; the feature check above is the strong one.
MIN_SAME_COUNTS = 0.96


handler = import_handler("endpoint_inference_fast_under_test")


def _load(model_dir: Path, *, reference: bool) -> torch.nn.Module:
    with pytest.MonkeyPatch.context() as mp:
        if reference:
            mp.setenv("BINCOUNT_REFERENCE", "1")
        else:
            mp.delenv("BINCOUNT_REFERENCE", raising=False)
        return handler.model_fn(str(model_dir))


@pytest.fixture(scope="module")
def fast(model_dir: Path) -> torch.nn.Module:
    return _load(model_dir, reference=False)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> torch.nn.Module:
    return _load(model_dir, reference=True)


def _predict(body: bytes, model: torch.nn.Module, *, reference: bool, mp: pytest.MonkeyPatch) -> torch.Tensor:
    if reference:
        mp.setenv("BINCOUNT_REFERENCE", "1")
    else:
        mp.delenv("BINCOUNT_REFERENCE", raising=False)
    return handler.predict_fn(handler.input_fn(body, "image/jpeg"), model)


def test_the_artifact_holds_an_int8_backbone_calibrated_on_training_photos(model_dir: Path) -> None:
    meta = json.loads((model_dir / INT8_META).read_text())
    assert (model_dir / INT8_FILE).is_file() and (model_dir / INT8_CHECK).is_file()
    assert meta["calibration_source"] == "train" and meta["calibration_images"] == 8
    assert meta["engine"] == ENGINE == "onednn"
    assert MIN_CHECK_COSINE <= meta["check_cosine_min"] <= 1.0 + 1e-6


def test_fast_path_agrees_with_the_exact_fp32_path(fast, reference, monkeypatch) -> None:
    """Every vendored photo through the real fast path, against the exact fp32 answer for it (one fp32 pass per
    photo: the reference probabilities come from its features; the next test pins them to the reference path)."""
    assert fast.serving_path == "int8" and reference.serving_path == "fp32 (reference mode: BINCOUNT_REFERENCE=1)"
    same, cosines, diffs = 0, [], []
    for path in PHOTOS:
        p_fast = _predict(path.read_bytes(), fast, reference=False, mp=monkeypatch)
        batch = eval_transform()(load_rgb(path)).unsqueeze(0)
        with torch.inference_mode():
            exact = reference.backbone(batch)
            # The handler answers calibrated probabilities: the artifact's review temperature (review.json).
            p_ref = torch.softmax(reference.head(exact) / reference.review.temperature, dim=1)[0]
            cosines.append(float(torch.cosine_similarity(fast.backbone(batch), exact)[0]))
        same += int(p_fast.argmax() == p_ref.argmax())
        diffs.append(float((p_fast - p_ref).abs().max()))
    assert min(cosines) >= MIN_FEATURE_COSINE, cosines
    assert same / len(PHOTOS) >= MIN_SAME_COUNTS, (same, diffs)
    # The answers move by far less than a count's worth; the median photo's probabilities barely at all.
    assert sorted(diffs)[len(diffs) // 2] < 0.08 and max(diffs) < 0.25, diffs


def test_reference_env_runs_the_exact_fp32_eager_path(reference, model_dir, monkeypatch) -> None:
    """BINCOUNT_REFERENCE=1: full decode, training's evaluation transforms, the fp32 network, bit for bit."""
    assert not isinstance(reference.backbone, torch.jit.ScriptModule)
    exact = load_model(model_dir)
    for index in (0, 17, 42):
        with torch.inference_mode():
            logits = exact(eval_transform()(load_rgb(PHOTOS[index])).unsqueeze(0))
            expected = torch.softmax(logits / reference.review.temperature, dim=1)[0]
        got = _predict(photo_bytes(index), reference, reference=True, mp=monkeypatch)
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)


def test_without_the_env_the_handler_runs_int8(fast) -> None:
    assert isinstance(fast.backbone, torch.jit.ScriptModule)
    assert torch.get_num_threads() <= handler.MAX_THREADS


def test_big_photos_agree_too(fast, reference, monkeypatch) -> None:
    """A photo far bigger than the vendored ones (resized down by the transforms) answers the same on both paths."""
    buffer = io.BytesIO()
    Image.open(PHOTOS[9]).convert("RGB").resize((1200, 900)).save(buffer, "JPEG", quality=92)
    p_fast = _predict(buffer.getvalue(), fast, reference=False, mp=monkeypatch)
    p_ref = _predict(buffer.getvalue(), reference, reference=True, mp=monkeypatch)
    assert float((p_fast - p_ref).abs().max()) < 0.25


def test_an_int8_file_from_other_weights_is_not_served(model_dir, tmp_path, caplog) -> None:
    """The int8 backbone must come from this model.pth: otherwise the endpoint serves fp32, and says why."""
    other = tmp_path / "artifact"
    shutil.copytree(model_dir, other)
    state = torch.load(other / "model.pth", map_location="cpu", weights_only=True)
    state["backbone.conv1.weight"] = state["backbone.conv1.weight"] * 2
    torch.save(state, other / "model.pth")
    model = _load(other, reference=False)
    assert model.serving_path.startswith("fp32") and "made from other backbone weights" in caplog.text


def test_a_corrupt_int8_file_falls_back_to_fp32(model_dir, tmp_path, caplog) -> None:
    other = tmp_path / "artifact"
    shutil.copytree(model_dir, other)
    (other / INT8_FILE).write_bytes(b"not a TorchScript archive")
    model = _load(other, reference=False)
    assert model.serving_path.startswith("fp32") and "could not load the int8 backbone" in caplog.text


def test_an_int8_backbone_that_disagrees_on_this_cpu_is_not_served(model_dir, tmp_path, caplog) -> None:
    """The load-time check: int8 features far from the stored fp32 ones (as saturating int16 sums on a CPU without
    VNNI would give) mean fp32 is served. Here the stored fp32 features are replaced by others."""
    other = tmp_path / "artifact"
    shutil.copytree(model_dir, other)
    check = torch.load(other / INT8_CHECK, weights_only=True)
    check["features"] = torch.rand_like(check["features"])
    torch.save(check, other / INT8_CHECK)
    model = _load(other, reference=False)
    assert model.serving_path.startswith("fp32") and "disagrees with fp32 on this CPU" in caplog.text


def test_without_its_check_photos_the_int8_backbone_is_not_served(model_dir, tmp_path, caplog) -> None:
    other = tmp_path / "artifact"
    shutil.copytree(model_dir, other)
    (other / INT8_CHECK).unlink()
    model = _load(other, reference=False)
    assert model.serving_path.startswith("fp32") and INT8_CHECK in caplog.text


def test_a_mismatched_artifact_is_still_refused_on_the_fast_path(model_dir, tmp_path) -> None:
    other = tmp_path / "artifact"
    shutil.copytree(model_dir, other)
    state = torch.load(other / "model.pth", map_location="cpu", weights_only=True)
    state["head.weight"], state["head.bias"] = state["head.weight"][:3], state["head.bias"][:3]
    torch.save(state, other / "model.pth")
    with pytest.raises(ModelMismatchError, match=r"head\.weight: \(3, 2048\) in file, \(5, 2048\) in network"):
        _load(other, reference=False)
