"""Reading a channel in the layout ``<channel>/<count>/<id>.jpg`` (docs/design.md §2).

A corrupt or truncated image never reaches the model and never stops an epoch: the dataset yields ``None`` for it
(with a warning naming the file), :func:`collate_skipping_bad` drops it from the batch and counts it, and the
training loop logs the count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from bincount.data.labels import COUNTS, count_to_index
from bincount.serving.imaging import to_rgb, upright

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataError(ValueError):
    """A channel folder is not in the expected layout; the message says what to fix."""


@dataclass(frozen=True)
class Sample:
    path: Path
    image_id: str
    count: int

    @property
    def target(self) -> int:
        return count_to_index(self.count)


def scan_channel(root: str | Path) -> list[Sample]:
    """List the images of a channel, sorted, with their counts taken from the folder names.

    Raises:
        DataError: the folder is missing, has a sub-folder that is not a count in 1..5, or holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"channel folder {root} does not exist")
    samples: list[Sample] = []
    for sub in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not sub.is_dir():
            continue  # stray files (a manifest, a README) are not images of any class
        if not (sub.name.isdigit() and int(sub.name) in COUNTS):
            raise DataError(
                f"{sub} is not a class folder: channel sub-folders must be object counts {list(COUNTS)} "
                "(layout <channel>/<count>/<id>.jpg)"
            )
        count = int(sub.name)
        samples.extend(
            Sample(path=p, image_id=p.stem, count=count)
            for p in sorted(sub.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    if not samples:
        raise DataError(f"channel {root} holds no images (expected <count>/<id>.jpg for counts {list(COUNTS)})")
    return samples


def load_rgb(path: str | Path) -> Image.Image | None:
    """Decode an image fully as upright RGB (the endpoint's decoding), or return None (with a warning) when it is
    corrupt or truncated."""
    try:
        with Image.open(path) as img:
            img.load()  # truncated files fail here (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
            return to_rgb(upright(img))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        log.warning("skipping unreadable image %s: %s", path, e)
        return None


class ChannelDataset(Dataset):
    """(image tensor, class index) pairs of one channel; ``None`` for an unreadable image."""

    def __init__(self, root: str | Path, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.root = Path(root)
        self.samples: Sequence[Sample] = scan_channel(self.root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | None:
        sample = self.samples[index]
        image = load_rgb(sample.path)
        if image is None:
            return None
        return self.transform(image), sample.target

    def class_counts(self) -> dict[int, int]:
        counts = dict.fromkeys(COUNTS, 0)
        for s in self.samples:
            counts[s.count] += 1
        return counts


@dataclass
class Batch:
    images: torch.Tensor
    targets: torch.Tensor
    skipped: int

    def __len__(self) -> int:
        return len(self.targets)


def collate_skipping_bad(items: list[tuple[torch.Tensor, int] | None]) -> Batch:
    """Stack the readable items; count the unreadable ones. A batch may come out empty."""
    good = [item for item in items if item is not None]
    skipped = len(items) - len(good)
    if not good:
        return Batch(torch.empty(0, 3, 1, 1), torch.empty(0, dtype=torch.long), skipped)
    images, targets = default_collate(good)
    return Batch(images, targets, skipped)
