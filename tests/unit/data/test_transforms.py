"""The endpoint's 8-bit transforms (:func:`bincount.data.transforms.eval_batch`) against training's evaluation
transforms, on the real vendored photos and on the shapes and modes a client may send."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from bincount.data.channel import load_rgb
from bincount.data.transforms import IMAGE_SIZE, IMAGENET_STD, eval_batch, eval_transform, resized_size
from tests.support.serving import PHOTOS

_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _grey_levels(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference between two normalised batches, in 8-bit grey levels."""
    return float(((a - b).abs() * _STD * 255).max())


def _both(img: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    return eval_batch(img), eval_transform()(img).unsqueeze(0)


def test_every_vendored_photo_lands_within_one_grey_level_of_the_training_transforms() -> None:
    worst = 0.0
    for path in PHOTOS:
        fast, exact = _both(load_rgb(path))
        assert fast.shape == exact.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
        assert fast.dtype == torch.float32 and fast.is_contiguous()
        worst = max(worst, _grey_levels(fast, exact))
    assert worst <= 1.0 + 1e-4, worst
    assert worst > 0  # it is a different resize implementation, not the same code twice


@pytest.mark.parametrize(
    "size",
    [(1200, 900), (900, 1200), (224, 224), (100, 80), (300, 700), (225, 2000), (4032, 3024)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_other_shapes_agree_too(size: tuple[int, int]) -> None:
    """Down- and upscaling, portrait and landscape, a side of exactly 224 and a long strip."""
    img = load_rgb(PHOTOS[3]).resize(size, Image.BICUBIC)
    fast, exact = _both(img)
    assert fast.shape == exact.shape
    assert _grey_levels(fast, exact) <= 1.0 + 1e-4


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK"])
def test_non_rgb_images_are_converted_as_the_training_transforms_see_them(mode: str) -> None:
    img = load_rgb(PHOTOS[5]).convert(mode)
    fast, exact = eval_batch(img), eval_transform()(img.convert("RGB")).unsqueeze(0)
    assert _grey_levels(fast, exact) <= 1.0 + 1e-4


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(327, 299, (244, 224)), (299, 327, (224, 244)), (224, 224, (224, 224)), (100, 50, (448, 224))],
)
def test_resized_size_follows_torchvision(width: int, height: int, expected: tuple[int, int]) -> None:
    assert resized_size(width, height) == expected
    resized = eval_transform().transforms[0](Image.new("RGB", (width, height)))
    assert resized.size == expected
