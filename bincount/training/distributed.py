"""Small data-parallel helpers, so a single-process run needs no special branch.

On SageMaker, a job with N instances sets ``SM_HOSTS`` (a JSON list) and ``SM_CURRENT_HOST`` on each; we run one
process per instance, rank = the host's position in the list, rendezvous at the first host. ``MASTER_ADDR`` and
``MASTER_PORT`` override the rendezvous (tests run several "hosts" on loopback). torchrun's ``RANK`` /
``WORLD_SIZE`` are honoured too.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    master_addr: str
    master_port: int


def dist_info_from_env(env: dict[str, str] | None = None) -> DistInfo:
    """Rank and world size from torchrun's or SageMaker's variables; a single process when neither is set."""
    env = dict(os.environ if env is None else env)
    port = int(env.get("MASTER_PORT", DEFAULT_PORT))
    if "WORLD_SIZE" in env and "RANK" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), env.get("MASTER_ADDR", "127.0.0.1"), port)
    hosts = json.loads(env.get("SM_HOSTS", "[]"))
    current = env.get("SM_CURRENT_HOST", "")
    if len(hosts) <= 1:
        return DistInfo(0, 1, "127.0.0.1", port)
    if current not in hosts:
        raise ValueError(f"SM_CURRENT_HOST={current!r} is not one of SM_HOSTS={hosts}")
    ordered = sorted(hosts)
    return DistInfo(ordered.index(current), len(ordered), env.get("MASTER_ADDR", ordered[0]), port)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when there is more than one process (gloo on CPU, nccl on GPU)."""
    info = dist_info_from_env()
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend,
            init_method=f"tcp://{info.master_addr}:{info.master_port}",
            rank=info.rank,
            world_size=info.world_size,
        )
        log.info("joined %s process group: rank %d of %d", backend, info.rank, info.world_size)
    return info


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers across processes (identity in a single process)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
