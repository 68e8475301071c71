"""The feature-extraction job (``training/extract_features.py``): the frozen backbone once over the train and valid
channels, the features cache (:mod:`bincount.training.features`) into SM_MODEL_DIR. Same options as the trials."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bincount.data.channel import DataError
from bincount.model.network import ModelConfig, PretrainedWeightsUnavailable, build_model
from bincount.training import sharding
from bincount.training.features import extract_channel, features_path, shard_path
from bincount.training.train import parse_args, resolve_device, seed_everything

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the feature-extraction job: features of the train and valid channels into SM_MODEL_DIR.

    On several instances each host extracts its own shard (see :mod:`bincount.training.sharding`) and writes
    ``<channel>.<host>.features.pt``, also to ``--features-output`` (an ``s3://`` prefix every host uploads to, or a
    folder) when given: SageMaker keeps one host's SM_MODEL_DIR, so the shards meet there instead.
    """
    args = parse_args(argv)
    seed_everything(args.seed)  # a random-init backbone (offline runs) is then the same one the trials build
    device = resolve_device(args.device)
    if not (args.train and args.valid and args.model_dir):
        log.error("missing input: set --train/SM_CHANNEL_TRAIN, --valid/SM_CHANNEL_VALID and --model-dir/SM_MODEL_DIR")
        return 2
    plan = sharding.plan_from_env()
    workers = sharding.loader_workers(args.workers, device)
    try:
        net = build_model(ModelConfig(head=args.head), pretrained=args.pretrained).to(device)
        for channel in ("train", "valid"):
            start = time.perf_counter()
            cache = extract_channel(
                Path(getattr(args, channel)),
                net.backbone,
                device,
                batch_size=max(args.batch_size, 64),
                workers=workers,
                shard=plan.local_shard(channel),
            )
            if plan.world == 1:
                path = cache.save(features_path(Path(args.model_dir), channel))
            else:
                path = cache.save(shard_path(Path(args.model_dir), channel, plan.host))
            if args.features_output:
                sharding.publish(path, args.features_output)
            seconds = time.perf_counter() - start
            log.info(
                "%s: %d photos x 2 views -> %s in %.1fs, %.1f photos/s (backbone forward passes: %d images%s)",
                channel,
                len(cache.targets),
                path,
                seconds,
                len(cache.targets) / max(seconds, 1e-9),
                2 * len(cache.targets),
                f"; skipped {cache.skipped} unreadable" if cache.skipped else "",
            )
    except (DataError, PretrainedWeightsUnavailable) as e:
        log.error("%s", e)
        return 2
    return 0
