"""Cached backbone features: extracted once from real photos, both views, tied to their backbone, and training on
them gives the classic recipe's results without a backbone pass."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms as tv

from bincount.data.channel import DataError
from bincount.data.transforms import eval_transform, train_transform
from bincount.model.network import ModelConfig, build_model
from bincount.training.features import CachedViews, FeatureSet, extract_channel, find_cache, load_cache
from bincount.training.jobs import JobResult, run_job
from tests.support.training import FAST_HYPERPARAMETERS

pytestmark = pytest.mark.slow
HP = {**FAST_HYPERPARAMETERS, "epochs": 2}


@pytest.fixture(scope="module")
def extracted(channels, tmp_path_factory) -> JobResult:
    """A real run of training/extract_features.py on the vendored photos."""
    job = run_job("extract_features.py", channels, tmp_path_factory.mktemp("extract"), HP)
    assert job.returncode == 0, job.log[-3000:]
    return job


def _valid_losses(log: str) -> list[float]:
    return [float(v) for v in re.findall(r"valid:loss=([0-9.eE+-]+)", log)]


def test_extraction_stores_both_views_of_every_photo(extracted: JobResult, channels) -> None:
    torch.manual_seed(HP["seed"])  # the job seeds before building its (random-init) backbone
    backbone = build_model(ModelConfig(), pretrained=False).backbone.eval()
    cache = load_cache(extracted.model_dir, "train", backbone)
    assert cache.features.shape == (30, 2, 2048) and cache.features.dtype == torch.float32
    photos = sorted((channels["train"]).rglob("*.jpg"))
    assert sorted(cache.ids) == sorted(p.stem for p in photos)
    # Spot-check one photo against the network run directly on the transformed image and its mirror.
    i = 4
    path = next(p for p in photos if p.stem == cache.ids[i])
    image = eval_transform()(Image.open(path).convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        assert torch.allclose(cache.features[i, 0], backbone(image)[0], atol=1e-3, rtol=1e-4)
        # The training transform with its flip forced on: the second view is what training would see.
        flipping = train_transform()
        (flip,) = [t for t in flipping.transforms if isinstance(t, tv.RandomHorizontalFlip)]
        flip.p = 1.0
        mirrored = flipping(Image.open(path).convert("RGB")).unsqueeze(0)
        assert torch.allclose(cache.features[i, 1], backbone(mirrored)[0], atol=1e-3, rtol=1e-4)
    assert int(cache.targets[i]) == int(path.parent.name) - 1
    assert "backbone forward passes: 60 images" in extracted.log


def test_cache_refuses_another_backbone(extracted: JobResult) -> None:
    torch.manual_seed(12345)
    other = build_model(ModelConfig(), pretrained=False).backbone
    with pytest.raises(DataError, match="made by another backbone"):
        load_cache(extracted.model_dir, "train", other)


def test_cache_is_found_inside_a_sagemaker_model_tarball(extracted: JobResult, tmp_path) -> None:
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        for f in extracted.model_dir.iterdir():
            tar.add(f, arcname=f.name)
    path = find_cache(tmp_path, "valid")
    assert FeatureSet.load(path).features.shape == (10, 2, 2048)
    with pytest.raises(DataError, match=r"no test\.features\.pt"):
        find_cache(tmp_path, "test")


def test_training_views_are_drawn_at_random_and_validation_uses_the_plain_view() -> None:
    cache = FeatureSet(torch.arange(8.0).reshape(2, 2, 2), torch.tensor([0, 3]), ["a", "b"], "x")
    torch.manual_seed(0)
    seen = {tuple(CachedViews(cache, train=True)[0][0].tolist()) for _ in range(50)}
    assert seen == {(0.0, 1.0), (2.0, 3.0)}
    feature, target = CachedViews(cache, train=False)[1]
    assert torch.equal(feature, cache.features[1, 0]) and target == 3


def test_trial_on_cached_features_matches_the_classic_trial(extracted: JobResult, channels, tmp_path) -> None:
    """Same photos, epochs and seed: validation loss equal within noise, and no backbone pass at all."""
    classic = run_job("hpo.py", channels, tmp_path / "classic", HP)
    cached = run_job("hpo.py", {"features": extracted.model_dir}, tmp_path / "cached", HP)
    assert classic.returncode == 0 and cached.returncode == 0, cached.log[-3000:]
    assert "backbone forward passes while training: 80 images" in classic.log  # 2 epochs x (30 train + 10 valid)
    assert "backbone forward passes while training: 0 images" in cached.log
    for a, b in zip(_valid_losses(classic.log), _valid_losses(cached.log), strict=True):
        assert b == pytest.approx(a, rel=0.05), (_valid_losses(classic.log), _valid_losses(cached.log))


def test_final_job_on_cached_features_writes_a_whole_model(extracted: JobResult, channels, tmp_path) -> None:
    job = run_job("train_model.py", {"features": extracted.model_dir, "test": channels["test"]}, tmp_path, HP)
    assert job.returncode == 0, job.log[-3000:]
    report = json.loads((job.output_dir / "evaluation.json").read_text())
    assert report["n_test"] == 10  # tested on the photos, through backbone + head
    from bincount.model.network import load_model

    assert load_model(job.model_dir)(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_cached_features_need_a_frozen_backbone(extracted: JobResult, channels, tmp_path) -> None:
    job = run_job("hpo.py", {"features": extracted.model_dir}, tmp_path, {**HP, "freeze-backbone": "false"})
    assert job.returncode == 2 and "need a frozen backbone" in job.log


def test_extraction_of_an_unreadable_only_channel_fails_clearly(tmp_path) -> None:
    (tmp_path / "train" / "1").mkdir(parents=True)
    (tmp_path / "train" / "1" / "bad.jpg").write_bytes(b"nope")
    backbone = build_model(ModelConfig(), pretrained=False).backbone
    with pytest.raises(DataError, match="no readable photo"):
        extract_channel(tmp_path / "train", backbone, torch.device("cpu"))


def test_features_folder_without_cache_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no train\.features\.pt in the features channel"):
        find_cache(tmp_path, "train")
