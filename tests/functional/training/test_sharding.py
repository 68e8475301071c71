"""Sharded feature extraction: two hosts with SageMaker's multi-host environment extract disjoint shards whose union
is the whole channel, and the features equal a single host's."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from bincount.data.channel import DataError, scan_channel
from bincount.model.network import ModelConfig, build_model
from bincount.training.features import FeatureSet, cache_files, load_cache, load_shards
from bincount.training.jobs import JobResult, run_job
from bincount.training.sharding import REPLICATED, SHARDED, ShardPlan, loader_workers, plan_from_env
from bincount.training.train import seed_everything
from tests.support.training import FAST_HYPERPARAMETERS

pytestmark = pytest.mark.slow
HOSTS = ("algo-1", "algo-2")
HP = {**FAST_HYPERPARAMETERS, "epochs": 1}


def shard_by_s3_key(channel: Path, out: Path, hosts: tuple[str, ...]) -> dict[str, Path]:
    """What ShardedByS3Key gives each host: a disjoint share of the channel's objects, keys (layout) kept."""
    keys = sorted(p.relative_to(channel) for p in channel.rglob("*.jpg"))
    shards = {}
    for rank, host in enumerate(hosts):
        for key in keys[rank :: len(hosts)]:
            (out / host / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(channel / key, out / host / key)
        shards[host] = out / host
    return shards


def run_hosts(channels: dict[str, Path], tmp: Path, distribution: str) -> tuple[list[JobResult], Path]:
    """Both hosts at once, each a SageMaker-like process; shards meet in one features folder."""
    shared = tmp / "features"
    if distribution == SHARDED:
        per_host = {name: shard_by_s3_key(channels[name], tmp / f"{name}-shards", HOSTS) for name in ("train", "valid")}
    else:
        per_host = {name: dict.fromkeys(HOSTS, channels[name]) for name in ("train", "valid")}
    config = {name: {"TrainingInputMode": "File", "S3DistributionType": distribution} for name in ("train", "valid")}

    def host(name: str) -> JobResult:
        env = {
            "SM_HOSTS": json.dumps(list(HOSTS)),
            "SM_CURRENT_HOST": name,
            "SM_INPUT_DATA_CONFIG": json.dumps(config),
        }
        own = {c: per_host[c][name] for c in ("train", "valid")}
        return run_job("extract_features.py", own, tmp / name, {**HP, "features-output": str(shared)}, extra_env=env)

    with ThreadPoolExecutor(2) as pool:
        jobs = list(pool.map(host, HOSTS))
    for job in jobs:
        assert job.returncode == 0, job.log[-3000:]
    return jobs, shared


@pytest.fixture(scope="module")
def single(channels, tmp_path_factory) -> JobResult:
    job = run_job("extract_features.py", channels, tmp_path_factory.mktemp("single"), HP)
    assert job.returncode == 0, job.log[-3000:]
    return job


@pytest.fixture(scope="module")
def backbone() -> torch.nn.Module:
    seed_everything(int(FAST_HYPERPARAMETERS["seed"]))  # the jobs' random-init backbone
    return build_model(ModelConfig(), pretrained=False).backbone


def by_id(cache: FeatureSet) -> dict[str, tuple[torch.Tensor, int]]:
    return {i: (cache.features[n], int(cache.targets[n])) for n, i in enumerate(cache.ids)}


@pytest.mark.parametrize("distribution", [SHARDED, REPLICATED])
def test_two_hosts_extract_disjoint_shards_equal_to_one_host(
    distribution: str, channels, single: JobResult, backbone, tmp_path: Path
) -> None:
    jobs, shared = run_hosts(channels, tmp_path, distribution)
    for channel in ("train", "valid"):
        files = cache_files(shared, channel)
        assert [f.name for f in files] == [f"{channel}.{h}.features.pt" for h in HOSTS]
        parts = [FeatureSet.load(f) for f in files]
        ids = [set(p.ids) for p in parts]
        assert ids[0] and ids[1] and not ids[0] & ids[1], "each host has its own, non-empty shard"
        whole = {s.image_id for s in scan_channel(channels[channel])}
        assert ids[0] | ids[1] == whole, "every photo extracted exactly once"
        sharded = by_id(load_cache(shared, channel, backbone))
        reference = by_id(load_cache(single.model_dir, channel, backbone))
        assert sharded.keys() == reference.keys()
        for image_id, (features, target) in reference.items():
            assert sharded[image_id][1] == target
            assert torch.allclose(sharded[image_id][0], features, atol=1e-4, rtol=1e-4), image_id
    # Each host also kept its own shard in its SM_MODEL_DIR, named for the host.
    assert sorted(p.name for p in jobs[1].model_dir.glob("*.features.pt")) == [
        "train.algo-2.features.pt",
        "valid.algo-2.features.pt",
    ]


def test_trial_reads_all_shards(channels, tmp_path: Path) -> None:
    _, shared = run_hosts(channels, tmp_path / "hosts", SHARDED)
    trial = run_job("hpo.py", {"features": shared}, tmp_path / "trial", HP)
    assert trial.returncode == 0, trial.log[-3000:]
    assert "train features: 2 shards" in trial.log and "valid:loss=" in trial.log


def test_overlapping_shards_are_refused(single: JobResult, tmp_path: Path) -> None:
    cache = FeatureSet.load(single.model_dir / "valid.features.pt")
    for host in HOSTS:
        cache.save(tmp_path / f"valid.{host}.features.pt")
    with pytest.raises(DataError, match="overlap"):
        FeatureSet.concat([FeatureSet.load(p) for p in cache_files(tmp_path, "valid")])
    with pytest.raises(DataError, match="overlap"):
        load_shards(cache_files(tmp_path, "valid"))


def test_shards_load_into_one_set_in_host_order(tmp_path: Path) -> None:
    torch.manual_seed(0)
    parts = [
        FeatureSet(torch.randn(n, 2, 8), torch.randint(0, 5, (n,)), [f"{h}-{i}" for i in range(n)], "abc", skipped=h)
        for h, n in ((1, 3), (2, 5))
    ]
    for h, part in enumerate(parts, start=1):
        part.save(tmp_path / f"train.algo-{h}.features.pt")
    loaded = load_shards(cache_files(tmp_path, "train"))
    expected = FeatureSet.concat(parts)
    assert torch.equal(loaded.features, expected.features) and torch.equal(loaded.targets, expected.targets)
    assert (loaded.ids, loaded.backbone, loaded.skipped) == (expected.ids, "abc", 3)
    parts[1].backbone = "other"
    parts[1].save(tmp_path / "train.algo-2.features.pt")
    with pytest.raises(DataError, match="different backbones"):
        load_shards(cache_files(tmp_path, "train"))


def test_plan_reads_sagemakers_variables() -> None:
    env = {
        "SM_HOSTS": '["algo-2", "algo-1", "algo-3"]',
        "SM_CURRENT_HOST": "algo-2",
        "SM_INPUT_DATA_CONFIG": json.dumps({"train": {"S3DistributionType": SHARDED}, "valid": {}}),
    }
    plan = plan_from_env(env)
    assert (plan.rank, plan.world) == (1, 3)
    assert plan.local_shard("train") is None and plan.local_shard("valid") == (1, 3)
    assert plan_from_env({}).local_shard("train") is None
    assert ShardPlan("algo-1", ("algo-1",)).local_shard("valid") is None
    with pytest.raises(ValueError, match="SM_CURRENT_HOST"):
        plan_from_env({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-9"})


def test_gpu_extraction_uses_every_cpu_for_decoding() -> None:
    assert loader_workers(4, torch.device("cuda"), cpus=8) == 8
    assert loader_workers(2, torch.device("cpu"), cpus=8) == 2
