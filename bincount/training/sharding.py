"""Which photos a feature-extraction host extracts, so that on N instances every photo is extracted exactly once.

SageMaker tells each host the job's hosts (``SM_HOSTS``), its own name (``SM_CURRENT_HOST``) and how each channel was
distributed (``SM_INPUT_DATA_CONFIG``: ``S3DistributionType``). A ``ShardedByS3Key`` channel already holds only this
host's share of the objects: the host extracts all of it. A ``FullyReplicated`` channel holds everything on every host:
the host then keeps every N-th photo from its rank. Either way the shards are disjoint and their union is the channel.
Each host writes ``<channel>.<host>.features.pt``; :func:`bincount.training.features.load_cache` concatenates."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

SHARDED = "ShardedByS3Key"
REPLICATED = "FullyReplicated"


@dataclass(frozen=True)
class ShardPlan:
    """This host's place among the extraction hosts and each channel's distribution."""

    host: str
    hosts: tuple[str, ...]
    distribution: Mapping[str, str] = field(default_factory=dict)

    @property
    def world(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.host)

    def local_shard(self, channel: str) -> tuple[int, int] | None:
        """``(rank, world)`` to slice a channel every host holds whole; None when the channel is already this
        host's shard (ShardedByS3Key) or there is one host."""
        if self.world == 1 or self.distribution.get(channel) == SHARDED:
            return None
        return self.rank, self.world


def plan_from_env(env: Mapping[str, str] | None = None) -> ShardPlan:
    """The plan from SageMaker's variables; one host ``algo-1`` when they are absent."""
    env = os.environ if env is None else env
    hosts = tuple(sorted(json.loads(env.get("SM_HOSTS", "[]")))) or ("algo-1",)
    host = env.get("SM_CURRENT_HOST", hosts[0])
    if host not in hosts:
        raise ValueError(f"SM_CURRENT_HOST={host!r} is not one of SM_HOSTS={list(hosts)}")
    config = json.loads(env.get("SM_INPUT_DATA_CONFIG", "{}"))
    distribution = {name: str(c.get("S3DistributionType", REPLICATED)) for name, c in config.items()}
    return ShardPlan(host=host, hosts=hosts, distribution=distribution)


def loader_workers(requested: int, device: torch.device, cpus: int | None = None) -> int:
    """Data-loader processes: on a GPU, JPEG decoding is the bottleneck, so one per CPU (at least ``requested``)."""
    cpus = cpus or os.cpu_count() or 1
    return max(requested, cpus) if device.type == "cuda" else requested


def publish(path: Path, destination: str) -> str:
    """Copy a shard to ``destination``: an ``s3://bucket/prefix/`` (upload) or a folder. Returns where it went."""
    if destination.startswith("s3://"):
        import boto3

        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        key = f"{prefix.rstrip('/')}/{path.name}" if prefix.strip("/") else path.name
        boto3.client("s3").upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"
    target = Path(destination)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target / path.name)
    return str(target / path.name)
