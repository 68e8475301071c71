"""Cached backbone features: run the frozen ResNet-50 once per photo, then train heads on the stored output.

With the backbone frozen (and in eval mode), its output is a pure function of the image. The training transform's
only randomness is the horizontal flip, so every training photo has exactly two views: we store the features of
both, and each epoch picks one at random, as ``RandomHorizontalFlip`` would. Tuning trials and the final head then
cost no backbone forward pass at all; the final model is the same network (backbone + trained head).

The cache is tied to the backbone that made it: a fingerprint of its weights is stored and checked on load.
"""

from __future__ import annotations

import contextlib
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
    def concat(cls, parts: list[FeatureSet]) -> FeatureSet:
        """One set from the shards of several extraction hosts (same backbone, disjoint photos)."""
        if len(parts) == 1:
            return parts[0]
        backbones = {p.backbone for p in parts}
        if len(backbones) != 1:
            raise DataError(f"feature shards were made by different backbones: {sorted(backbones)}")
        ids = [i for p in parts for i in p.ids]
        if len(set(ids)) != len(ids):
            raise DataError("feature shards overlap: a photo was extracted by more than one host")
        return cls(
            torch.cat([p.features for p in parts]),
            torch.cat([p.targets for p in parts]),
            ids,
            parts[0].backbone,
            sum(p.skipped for p in parts),
        )

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
    root: Path,
    backbone: nn.Module,
    device: torch.device,
    *,
    batch_size: int = 64,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
) -> FeatureSet:
    """Both views' features of every readable photo of a channel (unreadable ones skipped and counted).

    ``shard=(rank, world)`` keeps every ``world``-th photo from ``rank`` (a channel every host holds whole). On a
    GPU the backbone runs channels-last under autocast (bf16 where supported, else fp16); features are stored fp32.
    """
    backbone.eval()
    dataset = ChannelDataset(root, eval_transform())
    if shard is not None:
        rank, world = shard
        dataset.samples = dataset.samples[rank::world]
        if not dataset.samples:
            raise DataError(f"shard {rank} of {world} of {root} holds no photo: use fewer instances")
    cuda = device.type == "cuda"
    if cuda:
        backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loader = DataLoader(
        _Indexed(dataset), batch_size=batch_size, num_workers=workers, collate_fn=_collate, pin_memory=cuda
    )
    chunks: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    ids: list[str] = []
    skipped = 0
    for images, batch_targets, indices, batch_skipped in loader:
        skipped += batch_skipped
        if not indices:
            continue
        images = images.to(device, non_blocking=True)
        if cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        # The training transform flips after resize + crop, and normalisation is per channel, so the flipped
        # view is exactly the eval view mirrored along the width.
        with autocast(device):
            views = torch.stack([backbone(images), backbone(torch.flip(images, dims=[3]))], dim=1)
        chunks.append(views.float().cpu())
        targets.append(batch_targets)
        ids.extend(dataset.samples[i].image_id for i in indices)
    if not chunks:
        raise DataError(f"no readable photo in {root}: nothing to extract")
    return FeatureSet(torch.cat(chunks), torch.cat(targets), ids, backbone_fingerprint(backbone), skipped)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on a GPU (bf16 where the GPU has it, else fp16); nothing on the CPU (fp32, exact)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


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


def shard_path(directory: Path, channel: str, host: str) -> Path:
    """A host's shard of a channel's cache (multi-instance extraction)."""
    return directory / f"{channel}.{host}{FEATURES_SUFFIX}"


def _shards(directory: Path, channel: str) -> list[Path]:
    return sorted(p for p in directory.glob(f"{channel}.*{FEATURES_SUFFIX}") if p.is_file())


def cache_files(channel_dir: str | Path, channel: str) -> list[Path]:
    """A channel's cache: its one file, or every host's shard (a folder of shards or inside an archive)."""
    directory = Path(channel_dir)
    if features_path(directory, channel).is_file() or not _shards(directory, channel):
        try:
            return [find_cache(directory, channel)]
        except DataError:
            for name in ARCHIVES:
                if (directory / name).is_file() and _shards(_unpack((directory / name).resolve()), channel):
                    return _shards(_unpack((directory / name).resolve()), channel)
            raise
    return _shards(directory, channel)


def load_shards(files: list[Path]) -> FeatureSet:
    """Concatenate shards one at a time into one preallocated tensor: the full dataset's train features are ~4 GB,
    and holding every shard plus their concatenation would need twice that (a trial's ml.m5.large has 8 GiB)."""
    sizes, backbones, ids = [], set(), []
    for path in files:  # a first pass for the sizes; shards are loaded again below, one at a time
        part = FeatureSet.load(path)
        sizes.append(len(part.targets))
        backbones.add(part.backbone)
        ids.extend(part.ids)
        shape, dtype = part.features.shape[1:], part.features.dtype
        del part
    if len(backbones) != 1:
        raise DataError(f"feature shards were made by different backbones: {sorted(backbones)}")
    if len(set(ids)) != len(ids):
        raise DataError("feature shards overlap: a photo was extracted by more than one host")
    features = torch.empty((sum(sizes), *shape), dtype=dtype)
    targets = torch.empty(sum(sizes), dtype=torch.long)
    start, skipped = 0, 0
    for path, size in zip(files, sizes, strict=True):
        part = FeatureSet.load(path)
        features[start : start + size] = part.features
        targets[start : start + size] = part.targets
        skipped += part.skipped
        start += size
        del part
    return FeatureSet(features, targets, ids, backbones.pop(), skipped)


def load_cache(channel_dir: str | Path, channel: str, backbone: nn.Module) -> FeatureSet:
    """Load a channel's cache (all its shards) and check it was made by this very backbone."""
    files = cache_files(channel_dir, channel)
    cache = FeatureSet.load(files[0]) if len(files) == 1 else load_shards(files)
    if len(files) > 1:
        log.info("%s features: %d shards (%s)", channel, len(files), ", ".join(p.name for p in files))
    expected = backbone_fingerprint(backbone)
    if cache.backbone != expected:
        raise DataError(
            f"the {channel} feature cache was made by another backbone ({cache.backbone}, this one is {expected}): "
            "extract the features again with the same --pretrained and --seed"
        )
    log.info("%s features: %d photos x 2 views from the cache (backbone %s)", channel, len(cache.targets), expected)
    return cache
