"""The training recipe behind ``training/hpo.py`` (a tuning trial) and ``training/train_model.py`` (the final job).

Both run the same loop on SageMaker's channels and print the metric lines of docs/design.md §3. The final job then
restores the epoch with the lowest validation loss, evaluates it once on the test channel, and writes the model
artifact (``model.pth`` + ``code/``), ``evaluation.json`` and the plots.

Order, as in torchvision's reference scripts: train_one_epoch, evaluate, load_data, main, get_args_parser.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from bincount.data.channel import ChannelDataset, DataError, collate_skipping_bad, load_rgb, scan_channel
from bincount.data.labels import NUM_CLASSES, index_to_count
from bincount.data.transforms import eval_transform, train_transform
from bincount.model.artifact import package_code
from bincount.model.network import (
    HEADS,
    BinCountNet,
    ModelConfig,
    PretrainedWeightsUnavailable,
    build_head,
    build_model,
    empty_model,
    save_model,
)
from bincount.model.quantize import CALIBRATION_IMAGES, save_int8_backbone
from bincount.serving.review import DEFAULT_TARGET_ACCURACY, ReviewPolicy, calibrate
from bincount.training import debugger, diagnostics, distributed
from bincount.training.checkpoint import Checkpointer, History
from bincount.training.diagnostics import TrainingDiverged, TrainingMonitor
from bincount.training.evaluation import evaluate_counts, write_evaluation
from bincount.training.features import CachedViews, load_cache
from bincount.training.metrics import TEST_ACCURACY, TEST_RMSE, TRAIN_LOSS, VALID_ACCURACY, VALID_LOSS, format_metric

log = logging.getLogger("bincount.training.train")

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 2  # a non-finite loss or gradient (docs/design.md §9)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    n: int
    skipped: int


@dataclass
class _Tally:
    """Running sums of one pass over a channel."""

    loss_sum: float = 0.0
    correct: int = 0
    n: int = 0
    skipped: int = 0

    def add(self, loss: float, predicted: torch.Tensor, targets: torch.Tensor) -> None:
        self.loss_sum += loss * len(targets)
        self.correct += int((predicted == targets).sum().item())
        self.n += len(targets)


def _batches(loader: DataLoader, device: torch.device, tally: _Tally) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, targets) on the device; unreadable photos are counted in the tally, empty batches skipped."""
    for batch in loader:
        tally.skipped += batch.skipped
        if len(batch):
            yield batch.images.to(device, non_blocking=True), batch.targets.to(device, non_blocking=True)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    hook: object | None = None,
    monitor: TrainingMonitor | None = None,
) -> EpochStats:
    """One pass over the training channel; returns the mean loss (over all processes).

    With a ``monitor``, the rules check every step before the optimizer applies it (a non-finite loss raises
    :class:`TrainingDiverged`), and the pass is timed and profiled.
    """
    model.train()
    debugger.set_mode(hook, "train")
    tally = _Tally()
    batches = _batches(loader, device, tally)
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad] if monitor else []
    for step, (images, targets) in enumerate(monitor.timed(batches) if monitor else batches):
        if monitor is not None:
            monitor.before_step(model)
        logits = model(images)
        loss = criterion(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        value = loss.item()
        if monitor is not None:
            monitor.after_backward(step, value, targets, trained)
        optimizer.step()
        tally.add(value, logits.argmax(1), targets)
        if monitor is not None:
            monitor.after_step(len(targets))
    if monitor is not None:
        monitor.end_train_pass()
    return _reduce(tally, device)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    device: torch.device,
    hook: object | None = None,
    predictions: list[tuple[int, int]] | None = None,
    *,
    reduce: bool = True,
    logits: list[list[float]] | None = None,
) -> EpochStats:
    """Mean loss and accuracy on a channel; appends (true, predicted) class indices to ``predictions`` and each
    photo's logits to ``logits`` if given.

    ``reduce=False`` keeps the numbers of this process alone (the test channel is evaluated on rank 0 only).
    """
    model.eval()
    debugger.set_mode(hook, "eval")
    tally = _Tally()
    for images, targets in _batches(loader, device, tally):
        out = model(images)
        predicted = out.argmax(1)
        tally.add(criterion(out, targets).item(), predicted, targets)
        if predictions is not None:
            predictions.extend(zip(targets.tolist(), predicted.tolist(), strict=True))
        if logits is not None:
            logits.extend(out.float().cpu().tolist())
    return _reduce(tally, device, reduce=reduce)


def _reduce(tally: _Tally, device: torch.device, *, reduce: bool = True) -> EpochStats:
    sums = [tally.loss_sum, tally.correct, tally.n, tally.skipped]
    loss_sum, correct, n, skipped = distributed.all_reduce_sum(sums, device) if reduce else sums
    if n == 0:
        raise DataError("every image of the channel was unreadable: nothing to train or evaluate on")
    return EpochStats(loss=loss_sum / n, accuracy=correct / n, n=int(n), skipped=int(skipped))


def load_data(channel: str, root: str, args: argparse.Namespace, *, train: bool, sharded: bool = True) -> DataLoader:
    """A loader over one channel of photos; the training channel is shuffled (and sharded across processes)."""
    dataset = ChannelDataset(root, train_transform() if train else eval_transform())
    log.info("%s channel: %d images %s from %s", channel, len(dataset), dataset.class_counts(), root)
    return make_loader(dataset, args, train=train, sharded=sharded, workers=args.workers)


def load_cached(channel: str, args: argparse.Namespace, net: BinCountNet, *, train: bool) -> DataLoader:
    """A loader over a channel's cached backbone features (two views per photo, one drawn per epoch)."""
    dataset = CachedViews(load_cache(args.features, channel, net.backbone), train=train)
    return make_loader(dataset, args, train=train, sharded=True, workers=0)


def make_loader(dataset: Dataset, args: argparse.Namespace, *, train: bool, sharded: bool, workers: int) -> DataLoader:
    sampler: DistributedSampler | None = None
    if sharded and distributed.get_world_size() > 1:
        sampler = DistributedSampler(dataset, shuffle=train, seed=args.seed, drop_last=False)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skipping_bad,
        generator=torch.Generator().manual_seed(args.seed),
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
    )


def count_forward_passes(module: nn.Module) -> list[int]:
    """A one-element list that counts the images ``module`` processes (the backbone's compute, for the logs)."""
    counter = [0]
    module.register_forward_hook(lambda mod, inputs, output: counter.__setitem__(0, counter[0] + len(inputs[0])))
    return counter


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def resolve_device(choice: str) -> torch.device:
    """``auto`` is the GPU when there is one, else the CPU."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _log_epoch(epoch: int, epochs: int, train: EpochStats, valid: EpochStats, seconds: float) -> None:
    log.info(format_metric(TRAIN_LOSS, train.loss))
    log.info(format_metric(VALID_LOSS, valid.loss))
    log.info(format_metric(VALID_ACCURACY, valid.accuracy))
    skipped = train.skipped + valid.skipped
    log.info(
        "epoch %d/%d done in %.1fs: train loss %.4f acc %.3f | valid loss %.4f acc %.3f%s",
        epoch + 1,
        epochs,
        seconds,
        train.loss,
        train.accuracy,
        valid.loss,
        valid.accuracy,
        f" | skipped {skipped} unreadable images" if skipped else "",
    )


def main(args: argparse.Namespace, *, final: bool) -> int:
    """Train; for the final job also test and write the artifact. Returns the process exit code."""
    seed_everything(args.seed)
    device = resolve_device(args.device)
    distributed.init_distributed(device)
    try:
        return _run(args, device, final=final)
    except (DataError, PretrainedWeightsUnavailable) as e:
        log.error("%s", e)
        return EXIT_BAD_INPUT
    except TrainingDiverged as e:
        log.error("%s", e)
        return EXIT_DIVERGED
    finally:
        distributed.cleanup()


def _run(args: argparse.Namespace, device: torch.device, *, final: bool) -> int:
    cached = bool(args.features)
    if cached and not args.freeze_backbone:
        raise DataError("cached features (--features) need a frozen backbone; drop --freeze-backbone false")
    _require(args, *(["features"] if cached else ["train", "valid"]), *(["test", "model_dir"] if final else []))
    config = ModelConfig(head=args.head)
    net = build_model(config, pretrained=args.pretrained, freeze_backbone=args.freeze_backbone).to(device)
    backbone_passes = count_forward_passes(net.backbone)
    # With cached features only the head runs while training; the test still goes through the whole network.
    trained: nn.Module = net.head if cached else net
    # What training changes, and so all a checkpoint holds: a frozen backbone is rebuilt identically on resume.
    learned: nn.Module = net.head if args.freeze_backbone else net
    if cached:
        train_loader = load_cached("train", args, net, train=True)
        valid_loader = load_cached("valid", args, net, train=False)
    else:
        train_loader = load_data("train", args.train, args, train=True)
        valid_loader = load_data("valid", args.valid, args, train=False)
    test_loader = load_data("test", args.test, args, train=False, sharded=False) if final else None
    model = trained
    if distributed.get_world_size() > 1:
        model = DistributedDataParallel(trained, device_ids=[device.index] if device.type == "cuda" else None)
    criterion = nn.CrossEntropyLoss()
    trainable = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, eps=args.eps, weight_decay=args.weight_decay)
    log.info(
        "model: %s, %s head, %d trainable of %d parameters; AdamW lr=%g eps=%g weight_decay=%g",
        config.arch,
        config.head,
        sum(p.numel() for p in trainable),
        sum(p.numel() for p in net.parameters()),
        args.lr,
        args.eps,
        args.weight_decay,
    )
    hook = debugger.create_hook(trained, criterion) if final else None
    checkpointer = Checkpointer(args.checkpoint_dir, _fingerprint(args, final))
    state = checkpointer.restore(learned, optimizer)
    history: History = state.history

    monitor = TrainingMonitor(
        args, device, num_classes=NUM_CLASSES, output_dir=args.output_data_dir, fresh=state.next_epoch == 0
    )
    try:
        loop_start = time.perf_counter()
        for epoch in range(state.next_epoch, args.epochs):
            # Each epoch's shuffling and flips depend on (seed, epoch) alone, so a resumed run repeats them exactly.
            torch.manual_seed(args.seed + epoch)
            train_loader.generator.manual_seed(args.seed + epoch)
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            monitor.start_epoch(epoch)
            train_stats = train_one_epoch(model, train_loader, criterion, optimizer, device, hook, monitor)
            valid_stats = evaluate(model, valid_loader, criterion, device, hook)
            history.train_loss.append(train_stats.loss)
            history.valid_loss.append(valid_stats.loss)
            history.valid_accuracy.append(valid_stats.accuracy)
            if valid_stats.loss < state.best_valid_loss:
                state.remember_best(learned, epoch, valid_stats.loss)
            if distributed.is_main_process():
                _log_epoch(epoch, args.epochs, train_stats, valid_stats, time.perf_counter() - start)
            monitor.end_epoch(history.train_loss, history.valid_loss, images=train_stats.n)
            if distributed.is_main_process():
                checkpointer.save(learned, optimizer, epoch, state)

        if state.best_state is None:
            raise DataError(f"no epoch was trained (--epochs {args.epochs}); nothing to select or save")
        learned.load_state_dict(state.best_state)
        best = state.best_epoch
        log.info("selected epoch %d (lowest valid loss %.4f)", best + 1, state.best_valid_loss)
        log.info(
            "training loop: %d epochs in %.2fs; backbone forward passes while training: %d images",
            args.epochs - state.next_epoch,
            time.perf_counter() - loop_start,
            backbone_passes[0],
        )
        if not distributed.is_main_process():
            debugger.close(hook)
            return 0
        # The tuning objective is the last valid:loss a job prints: make it the selected epoch's.
        log.info(format_metric(VALID_LOSS, history.valid_loss[best]))
        log.info(format_metric(VALID_ACCURACY, history.valid_accuracy[best]))
        if final:
            assert test_loader is not None
            # A Debugger hook counts every pass of the module it watches: the review's validation pass runs on a copy.
            reviewed = trained if hook is None else _unhooked_copy(trained, config, cached, device)
            _finish(net, config, test_loader, criterion, device, history, args, hook, monitor, (reviewed, valid_loader))
        debugger.close(hook)
        return 0
    finally:
        monitor.write()  # diagnostics.json, also when training stopped early


def _finish(
    net: BinCountNet,
    config: ModelConfig,
    test_loader: DataLoader,
    criterion: nn.Module,
    device: torch.device,
    history: History,
    args: argparse.Namespace,
    hook: object | None,
    monitor: TrainingMonitor,
    validation: tuple[nn.Module, DataLoader],
) -> None:
    """Test once, then write evaluation.json, the plots, report.html and the model artifact (with review.json: the
    temperature and review threshold fitted on ``validation``, the selected model and its validation loader)."""
    from bincount.training import plots  # matplotlib only where plots are drawn
    from bincount.training import report as report_page

    pairs: list[tuple[int, int]] = []
    test_logits: list[list[float]] = []
    test_stats = evaluate(
        net, test_loader, criterion, device, hook, predictions=pairs, reduce=False, logits=test_logits
    )
    report = evaluate_counts([index_to_count(t) for t, _ in pairs], [index_to_count(p) for _, p in pairs])
    report["loss"] = test_stats.loss
    policy, report["review"] = _fit_review(*validation, device, test_logits, [t for t, _ in pairs], args)
    log.info(format_metric(TEST_ACCURACY, float(report["accuracy"])))
    log.info(format_metric(TEST_RMSE, float(report["rmse"])))
    output_dir = Path(args.output_data_dir)
    write_evaluation(report, output_dir)
    drawn = {
        "loss": plots.plot_losses(history.train_loss, history.valid_loss, output_dir),
        "confusion": plots.plot_confusion(report["confusion_matrix"], output_dir),
    }
    page = report_page.write_report(output_dir, report, monitor.to_json(), drawn)
    log.info("training report: %s", page)
    save_model(net.cpu(), config, args.model_dir)
    policy.save(args.model_dir)
    _save_int8(net, args)
    package_code(args.model_dir)
    log.info("model artifact written to %s; evaluation and plots to %s", args.model_dir, output_dir)


def _unhooked_copy(module: nn.Module, config: ModelConfig, cached: bool, device: torch.device) -> nn.Module:
    """The selected weights in a module no hook watches (the head alone when training read cached features)."""
    fresh = build_head(config) if cached else empty_model(config)
    fresh.load_state_dict(module.state_dict())
    return fresh.to(device).eval()


def _fit_review(
    model: nn.Module,
    valid_loader: DataLoader,
    device: torch.device,
    test_logits: list[list[float]],
    test_targets: list[int],
    args: argparse.Namespace,
) -> tuple[ReviewPolicy, dict[str, object]]:
    """Temperature and review threshold on the validation channel (this process's shard), reported on the test set."""
    pairs: list[tuple[int, int]] = []
    valid_logits: list[list[float]] = []
    # A loss module of its own: the training criterion may carry a Debugger hook too.
    evaluate(model, valid_loader, nn.CrossEntropyLoss(), device, predictions=pairs, reduce=False, logits=valid_logits)
    policy, review = calibrate(
        valid_logits,
        [t for t, _ in pairs],
        test_logits,
        test_targets,
        target_accuracy=args.review_target_accuracy,
    )
    test = review["test"]
    log.info(
        "review: temperature %.3f, threshold %.3f for %.0f%% accepted accuracy on valid; test: %d of %d accepted "
        "(accuracy %s), ECE %.3f -> %.3f",
        policy.temperature,
        policy.threshold,
        100 * args.review_target_accuracy,
        test["accepted"],
        test["n"],
        "n/a" if test["accepted_accuracy"] is None else f"{test['accepted_accuracy']:.3f}",
        review["ece_before"],
        review["ece_after"],
    )
    return policy, review


def _save_int8(net: BinCountNet, args: argparse.Namespace) -> None:
    """The endpoint's int8 backbone, calibrated on a few training photos spread over the counts (the test photos
    when training read cached features and has none)."""
    source = "train" if args.train else "test"
    samples = scan_channel(args.train or args.test)
    step = max(1, len(samples) // CALIBRATION_IMAGES)
    transform = eval_transform()
    images = [load_rgb(s.path) for s in samples[::step]]
    batch = [transform(img) for img in images if img is not None][:CALIBRATION_IMAGES]
    if not batch:
        log.warning("no readable %s photo to calibrate the int8 backbone: the endpoint will serve fp32", source)
        return
    save_int8_backbone(net.backbone, torch.stack(batch), args.model_dir, source=source)


def _fingerprint(args: argparse.Namespace, final: bool) -> dict[str, object]:
    """What a checkpoint must match to be resumed."""
    keys = ("lr", "eps", "weight_decay", "batch_size", "pretrained", "head", "freeze_backbone", "seed")
    return {"job": "final" if final else "tune", **{k: getattr(args, k) for k in keys}}


_SOURCES = {
    "features": "--features or SM_CHANNEL_FEATURES",
    "train": "--train or SM_CHANNEL_TRAIN",
    "valid": "--valid or SM_CHANNEL_VALID",
    "test": "--test or SM_CHANNEL_TEST",
    "model_dir": "--model-dir or SM_MODEL_DIR",
}


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [_SOURCES[n] for n in names if not getattr(args, n)]
    if missing:
        raise DataError(f"missing input: set {'; '.join(missing)}")


def str2bool(value: str | bool) -> bool:
    """Parse true/false flags the way SageMaker passes them ("true", "True", "1", ...)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """Options of both entry points; SageMaker passes hyperparameters as ``--name value``."""
    p = argparse.ArgumentParser(description="Train the bincount ResNet-50 head", add_help=add_help)
    hp = p.add_argument_group("hyperparameters")
    hp.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    hp.add_argument("--eps", type=float, default=1e-8, help="AdamW epsilon (default: 1e-8)")
    hp.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default: 1e-2)")
    hp.add_argument("--batch-size", type=int, default=32, help="images per batch and process (default: 32)")
    hp.add_argument("--epochs", type=int, default=4, help="training epochs (default: 4)")
    hp.add_argument(
        "--pretrained",
        type=str2bool,
        default=True,
        help="start from ImageNet weights, downloaded by torchvision (default: true)",
    )
    hp.add_argument("--head", choices=HEADS, default="linear", help="classifier head (default: linear)")
    hp.add_argument(
        "--freeze-backbone",
        type=str2bool,
        default=True,
        help="train only the head (default: true); false fine-tunes the whole network",
    )
    hp.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    hp.add_argument(
        "--review-target-accuracy",
        type=float,
        default=DEFAULT_TARGET_ACCURACY,
        help="the review threshold is the lowest confidence at which the accepted validation answers reach this "
        f"accuracy; below it an answer needs review (default: {DEFAULT_TARGET_ACCURACY})",
    )
    diagnostics.add_arguments(p)
    run = p.add_argument_group("run")
    run.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loader processes (default: min(4, CPUs))"
    )
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train (default: auto, the GPU when there is one)",
    )
    run.add_argument(
        "--checkpoint-dir",
        default=_env("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints"),
        help="checkpoint every epoch here and resume from it (default: /opt/ml/checkpoints)",
    )
    io = p.add_argument_group("SageMaker folders (default: the SM_* environment variables)")
    io.add_argument("--train", default=_env("SM_CHANNEL_TRAIN"), help="training channel")
    io.add_argument("--valid", default=_env("SM_CHANNEL_VALID"), help="validation channel")
    io.add_argument("--test", default=_env("SM_CHANNEL_TEST"), help="test channel (final job only)")
    io.add_argument(
        "--features",
        default=_env("SM_CHANNEL_FEATURES"),
        help="cached backbone features from extract_features.py: train on them instead of the photos",
    )
    io.add_argument(
        "--features-output",
        default=None,
        help="extraction: also write each host's feature shard here (an s3:// prefix or a folder; default: none)",
    )
    io.add_argument("--model-dir", default=_env("SM_MODEL_DIR"), help="where the model artifact goes")
    io.add_argument(
        "--output-data-dir", default=_env("SM_OUTPUT_DATA_DIR", "output"), help="where evaluation.json and the plots go"
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse known options and ignore the rest (SageMaker adds its own)."""
    args, unknown = get_args_parser().parse_known_args(argv)
    if unknown:
        log.info("ignoring unknown options: %s", " ".join(unknown))
    for name in ("lr", "eps", "batch_size", "epochs"):
        if getattr(args, name) <= 0:
            get_args_parser().error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.weight_decay < 0:
        get_args_parser().error(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if not 0 < args.review_target_accuracy <= 1:
        get_args_parser().error(f"--review-target-accuracy must be in (0, 1], got {args.review_target_accuracy}")
    problem = diagnostics.check_arguments(args)
    if problem:
        get_args_parser().error(problem)
    return args
