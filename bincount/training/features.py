"""Cached backbone features: run the frozen ResNet-50 once per photo, then train heads on the stored output.

With the backbone frozen (and in eval mode), its output is a pure function of the image. The training transform's
only randomness is the horizontal flip, so every training photo has exactly two views: we store the features of
both, and each epoch picks one at random, as ``RandomHorizontalFlip`` would. Tuning trials and the final head then
cost no backbone forward pass at all; the final model is the same network (backbone + trained head).

The cache is tied to the backbone that made it: a fingerprint of its weights is stored and checked on load.
"""

from __future__ import annotations

import functools
import logging
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from bincount.data.channel import ChannelDataset, DataError
from bincount.data.transforms import eval_transform
from bincount.model.network import backbone_fingerprint

log = logging.getLogger(__name__)

FEATURES_SUFFIX = ".features.pt"
ARCHIVES = ("model.tar.gz", "output.tar.gz", "features.tar.gz")


@dataclass
class FeatureSet:
    """Features of one channel: ``features[i, v]`` is photo i seen as view v (0: as is, 1: flipped)."""

    features: torch.Tensor  # (N, 2, 2048) float32
    targets: torch.Tensor  # (N,) class indices
    ids: list[str]
    backbone: str
    skipped: int = 0

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "features": self.features,
            "targets": self.targets,
            "ids": self.ids,
            "backbone": self.backbone,
            "skipped": self.skipped,
        }
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: Path) -> FeatureSet:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return cls(**payload)
        except Exception as e:
            raise DataError(f"{path} is not a bincount feature cache: {e}") from e


class _Indexed(Dataset):
    """A channel's items with their index, so the cache records which photos it holds."""

    def __init__(self, dataset: ChannelDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int] | None:
        item = self.dataset[index]
        return None if item is None else (*item, index)


def _collate(items: list[tuple[torch.Tensor, int, int] | None]) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
    good = [item for item in items if item is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), [], len(items)
    images, targets, indices = default_collate(good)
    return images, targets, indices.tolist(), len(items) - len(good)


@torch.inference_mode()
def extract_channel(
    root: Path, backbone: nn.Module, device: torch.device, *, batch_size: int = 64, workers: int = 0
) -> FeatureSet:
    """Both views' features of every readable photo of a channel (unreadable ones skipped and counted)."""
    backbone.eval()
    dataset = ChannelDataset(root, eval_transform())
    loader = DataLoader(_Indexed(dataset), batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    chunks: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    ids: list[str] = []
    skipped = 0
    for images, batch_targets, indices, batch_skipped in loader:
        skipped += batch_skipped
        if not indices:
            continue
        images = images.to(device)
        # The training transform flips after resize + crop, and normalisation is per channel, so the flipped
        # view is exactly the eval view mirrored along the width.
        views = torch.stack([backbone(images), backbone(torch.flip(images, dims=[3]))], dim=1)
        chunks.append(views.float().cpu())
        targets.append(batch_targets)
        ids.extend(dataset.samples[i].image_id for i in indices)
    if not chunks:
        raise DataError(f"no readable photo in {root}: nothing to extract")
    return FeatureSet(torch.cat(chunks), torch.cat(targets), ids, backbone_fingerprint(backbone), skipped)


class CachedViews(Dataset):
    """(feature, target) pairs; in training, each access picks one of the two views at random (p=0.5)."""

    def __init__(self, cache: FeatureSet, *, train: bool) -> None:
        self.cache = cache
        self.train = train

    def __len__(self) -> int:
        return len(self.cache.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        view = int(torch.rand(()) < 0.5) if self.train else 0
        return self.cache.features[index, view], int(self.cache.targets[index])


def features_path(directory: Path, channel: str) -> Path:
    return directory / f"{channel}{FEATURES_SUFFIX}"


@functools.cache
def _unpack(archive: Path) -> Path:
    """Unpack a SageMaker artifact once per process (train and valid share it) and return the folder."""
    target = Path(tempfile.mkdtemp(prefix="bincount-features-"))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: refuse links and paths out of target
            tar.extractall(target, filter="data")
        else:  # older containers' Pythons; the archive is our own job's output
            tar.extractall(target)
    return target


def find_cache(channel_dir: str | Path, channel: str) -> Path:
    """The cache file of a channel in a features folder, unpacking a SageMaker ``*.tar.gz`` artifact if needed."""
    directory = Path(channel_dir)
    path = features_path(directory, channel)
    if path.is_file():
        return path
    for name in ARCHIVES:
        archive = directory / name
        if archive.is_file():
            unpacked = features_path(_unpack(archive.resolve()), channel)
            if unpacked.is_file():
                return unpacked
    raise DataError(f"no {channel}{FEATURES_SUFFIX} in the features channel {directory}")


def load_cache(channel_dir: str | Path, channel: str, backbone: nn.Module) -> FeatureSet:
    """Load a channel's cache and check it was made by this very backbone."""
    cache = FeatureSet.load(find_cache(channel_dir, channel))
    expected = backbone_fingerprint(backbone)
    if cache.backbone != expected:
        raise DataError(
            f"the {channel} feature cache was made by another backbone ({cache.backbone}, this one is {expected}): "
            "extract the features again with the same --pretrained and --seed"
        )
    log.info("%s features: %d photos x 2 views from the cache (backbone %s)", channel, len(cache.targets), expected)
    return cache
