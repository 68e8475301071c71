"""Image transforms: the one definition used by training, evaluation and the endpoint."""

from __future__ import annotations

from torchvision import transforms as tv

IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform() -> tv.Compose:
    """Resize 224, center crop 224, random horizontal flip, tensor, ImageNet normalisation."""
    return tv.Compose(
        [
            tv.Resize(IMAGE_SIZE),
            tv.CenterCrop(IMAGE_SIZE),
            tv.RandomHorizontalFlip(),
            tv.ToTensor(),
            tv.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def eval_transform() -> tv.Compose:
    """Resize 224, center crop 224, tensor, ImageNet normalisation (no randomness)."""
    return tv.Compose(
        [
            tv.Resize(IMAGE_SIZE),
            tv.CenterCrop(IMAGE_SIZE),
            tv.ToTensor(),
            tv.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
