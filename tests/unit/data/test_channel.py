"""Reading channels of real photos: layout checks, and unreadable images skipped, counted, never fed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from bincount.data.channel import ChannelDataset, DataError, collate_skipping_bad, scan_channel
from bincount.data.sample import SAMPLE_DIR, sample_entries
from bincount.data.transforms import IMAGE_SIZE, eval_transform, train_transform


def test_vendored_sample_matches_the_manifest() -> None:
    entries = sample_entries()
    assert len(entries) == 50
    assert {(e.split, e.count) for e in entries} == {(s, c) for s in ("train", "valid", "test") for c in range(1, 6)}
    assert all((SAMPLE_DIR / "images" / f"{e.id}.jpg").is_file() for e in entries)


def test_channel_reads_real_photos_through_the_transforms(channels: dict[str, Path]) -> None:
    dataset = ChannelDataset(channels["train"], eval_transform())
    assert len(dataset) == 30 and dataset.class_counts() == {1: 6, 2: 6, 3: 6, 4: 6, 5: 6}
    image, target = dataset[0]
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and image.dtype == torch.float32
    assert target == dataset.samples[0].count - 1
    # ImageNet normalisation: a real photo lands roughly centred, not in [0, 1].
    assert image.min() < 0 < image.max()


def test_training_transform_flips_and_eval_transform_does_not(channels: dict[str, Path]) -> None:
    path = next((channels["valid"] / "3").iterdir())
    from PIL import Image

    img = Image.open(path).convert("RGB")
    assert torch.equal(eval_transform()(img), eval_transform()(img))
    views = {tuple(train_transform()(img)[0, 0, :4].tolist()) for _ in range(20)}
    assert len(views) == 2, "RandomHorizontalFlip should give exactly two views"


def _copy_channel(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_corrupt_and_truncated_images_are_skipped_and_counted(channels, tmp_path, caplog) -> None:
    root = _copy_channel(channels["valid"], tmp_path / "valid")
    real = next((root / "2").iterdir())
    (root / "2" / "truncated.jpg").write_bytes(real.read_bytes()[: len(real.read_bytes()) // 3])
    (root / "4" / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    dataset = ChannelDataset(root, eval_transform())
    assert len(dataset) == 12
    with caplog.at_level(logging.WARNING, logger="bincount.data.channel"):
        items = [dataset[i] for i in range(len(dataset))]
    bad = [s.path.name for s, item in zip(dataset.samples, items, strict=True) if item is None]
    assert sorted(bad) == ["garbage.jpg", "truncated.jpg"]
    assert "truncated.jpg" in caplog.text and "garbage.jpg" in caplog.text
    batch = collate_skipping_bad(items)
    assert batch.skipped == 2 and len(batch) == 10 and batch.images.shape[0] == 10


def test_an_all_bad_batch_is_empty_not_an_error() -> None:
    batch = collate_skipping_bad([None, None])
    assert len(batch) == 0 and batch.skipped == 2


def test_empty_channel_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "train" / "1").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        scan_channel(tmp_path / "train")


def test_missing_channel_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_channel(tmp_path / "nope")


@pytest.mark.parametrize("folder", ["0", "6", "cats"])
def test_class_folder_outside_1_to_5_is_a_clear_error(channels, tmp_path, folder) -> None:
    root = _copy_channel(channels["test"], tmp_path / "test")
    (root / folder).mkdir()
    with pytest.raises(DataError, match=f"{folder} is not a class folder"):
        scan_channel(root)
