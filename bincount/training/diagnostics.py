"""Training diagnostics in-process (docs/design.md §9): built-in rules on the real tensors, and a cheap profile.

SageMaker Debugger's rules and Profiler are closed to new accounts, and the newer training containers have no smdebug
hook, so both training entry points check their own training while it runs. Each rule is defined once in
:data:`RULES` with its thresholds; every threshold is a hyperparameter (``--loss-patience 3``) of hpo.py and
train_model.py alike. Statuses use Debugger's words, ``IssuesFound`` / ``NoIssuesFound``.

- ``LossNotDecreasing``: the training loss of the last ``--loss-patience`` epochs is not at least
  ``--loss-min-decrease`` (relative) below the best loss before them.
- ``Overfit``: the validation loss has risen more than ``--overfit-tolerance`` (relative) above its best for
  ``--overfit-patience`` epochs while the training loss kept falling.
- ``VanishingGradient``: at a checked step (every ``--rule-interval`` steps) a trained tensor's mean absolute
  gradient is below ``--vanishing-gradient-threshold``.
- ``ExplodingTensor``: a non-finite loss or gradient (the job stops at once, exit code 2), or a mean absolute
  gradient above ``--exploding-gradient-threshold``.
- ``PoorWeightInitialization``: at the first step of a fresh run, the loss is above ``--poor-init-loss-ratio``
  times chance level (ln of the class count), or a ReLU gets at least ``--poor-init-dead-fraction`` of
  non-positive inputs (a dead layer).
- ``ClassImbalance``: in the first epoch's training targets, the most common class has more than
  ``--class-imbalance-ratio`` times the photos of the rarest (a class with none counts as infinitely rarer).

Each epoch the main process prints ``rule:<Name>=0|1`` (1: issues found so far) and
``profile:images_per_second=<float>``; ``diagnostics.json`` in the output folder holds every rule's status, the
epoch it fired (1-based), what it saw, and the profile: data-loading against compute time, images per second, peak
memory, and a ``torch.profiler`` trace of the first ``--profile-steps`` steps (Chrome trace + top operators).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bincount.training import distributed
from bincount.training.metrics import IMAGES_PER_SECOND, RULE_NAMES, RULE_PREFIX, format_metric

log = logging.getLogger(__name__)

ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
DIAGNOSTICS_FILE = "diagnostics.json"
PROFILE_DIR = "profile"
TRACE_FILE = "trace.json"
TOP_OPERATORS_FILE = "top_operators.txt"
TOP_OPERATORS = 15


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient: training stops at once (ExplodingTensor)."""


# --- the rules and their thresholds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """One setting of a rule: its option (``--name``), type, default and meaning."""

    name: str
    type: type
    default: float
    help: str

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class RuleSpec:
    name: str
    summary: str
    thresholds: tuple[Threshold, ...] = ()


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "LossNotDecreasing",
        "the training loss stopped decreasing",
        (
            Threshold("loss-patience", int, 2, "epochs without enough decrease before LossNotDecreasing fires"),
            Threshold("loss-min-decrease", float, 0.01, "relative decrease of the training loss that counts"),
        ),
    ),
    RuleSpec(
        "Overfit",
        "the validation loss rises while the training loss falls",
        (
            Threshold("overfit-patience", int, 2, "epochs the validation loss stays above its best before Overfit"),
            Threshold("overfit-tolerance", float, 0.1, "relative rise of the validation loss above its best"),
        ),
    ),
    RuleSpec(
        "VanishingGradient",
        "gradients too small to train",
        (Threshold("vanishing-gradient-threshold", float, 1e-7, "mean |gradient| of a tensor below this fires"),),
    ),
    RuleSpec(
        "ExplodingTensor",
        "a non-finite loss or gradient (stops the job), or huge gradients",
        (Threshold("exploding-gradient-threshold", float, 1e3, "mean |gradient| of a tensor above this fires"),),
    ),
    RuleSpec(
        "PoorWeightInitialization",
        "the first step starts far from chance level or with dead ReLUs",
        (
            Threshold("poor-init-loss-ratio", float, 2.0, "first loss above this times ln(classes) fires"),
            Threshold("poor-init-dead-fraction", float, 0.99, "share of non-positive ReLU inputs that marks it dead"),
        ),
    ),
    RuleSpec(
        "ClassImbalance",
        "the training photos are unevenly spread over the counts",
        (Threshold("class-imbalance-ratio", float, 10.0, "most common over rarest class count above this fires"),),
    ),
)
assert tuple(r.name for r in RULES) == RULE_NAMES, "bincount.training.metrics.RULE_NAMES must list RULES in order"
_THRESHOLDS = {t.attribute: t for r in RULES for t in r.thresholds}
RULE_INTERVAL = Threshold("rule-interval", int, 10, "check the gradients every this many training steps")
PROFILE_STEPS = Threshold("profile-steps", int, 3, "training steps torch.profiler traces (after one warm-up); 0: none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The rules' thresholds and the profiler's steps as options (each defined once, in :data:`RULES`)."""
    group = parser.add_argument_group("training diagnostics (rules and profile, see bincount.training.diagnostics)")
    for threshold in (*_THRESHOLDS.values(), RULE_INTERVAL, PROFILE_STEPS):
        group.add_argument(
            f"--{threshold.name}",
            type=threshold.type,
            default=threshold.default,
            help=f"{threshold.help} (default: {threshold.default:g})",
        )


def check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with the diagnostics options, or None."""
    for threshold in (*_THRESHOLDS.values(), RULE_INTERVAL):
        if getattr(args, threshold.attribute) <= 0:
            return f"--{threshold.name} must be positive, got {getattr(args, threshold.attribute)}"
    if args.profile_steps < 0:
        return f"--profile-steps must be >= 0, got {args.profile_steps}"
    if not 0 < args.poor_init_dead_fraction <= 1:
        return f"--poor-init-dead-fraction must be in (0, 1], got {args.poor_init_dead_fraction}"
    return None


@dataclass
class RuleResult:
    status: str = NO_ISSUES_FOUND
    epoch: int | None = None
    detail: str = "no issue found"

    @property
    def found(self) -> bool:
        return self.status == ISSUES_FOUND


# --- profiling ------------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class EpochProfile:
    epoch: int
    images: int = 0
    data_seconds: float = 0.0
    train_seconds: float = 0.0

    @property
    def compute_seconds(self) -> float:
        return max(0.0, self.train_seconds - self.data_seconds)

    @property
    def images_per_second(self) -> float:
        return self.images / self.train_seconds if self.train_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "images": self.images,
            "images_per_second": round(self.images_per_second, 3),
            "data_seconds": round(self.data_seconds, 4),
            "compute_seconds": round(self.compute_seconds, 4),
        }


class StepProfiler:
    """``torch.profiler`` over a few training steps (after ``skip`` warm-up steps), then a Chrome trace and the
    top operators by self time. Off after that: the rest of the run pays nothing."""

    def __init__(self, steps: int, output_dir: Path | None, device: torch.device, skip: int = 1) -> None:
        self.steps, self.output_dir, self.skip = steps, output_dir, skip
        self.activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            self.activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profile: torch.profiler.profile | None = None
        self._seen = 0
        self._recorded = 0
        self.done = steps <= 0 or output_dir is None
        self.top_operators: list[dict[str, Any]] = []
        self.trace: str | None = None

    def before_step(self) -> None:
        if self.done or self._profile is not None:
            return
        if self._seen >= self.skip:
            self._profile = torch.profiler.profile(activities=self.activities)
            self._profile.__enter__()

    def after_step(self) -> None:
        if self.done:
            return
        self._seen += 1
        if self._profile is not None:
            self._recorded += 1
            if self._recorded >= self.steps:
                self.finish()

    def finish(self) -> None:
        """Stop and write what was recorded (also when an epoch ends before the planned steps)."""
        if self.done:
            return
        self.done = True
        prof, self._profile = self._profile, None
        if prof is None:
            return
        assert self.output_dir is not None
        folder = self.output_dir / PROFILE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # "clears events at the end of each cycle": one cycle is all we record
            warnings.simplefilter("ignore", UserWarning)
            prof.__exit__(None, None, None)
            prof.export_chrome_trace(str(folder / TRACE_FILE))
            averages = prof.key_averages()
        sort_key = "self_cuda_time_total" if len(self.activities) > 1 else "self_cpu_time_total"
        (folder / TOP_OPERATORS_FILE).write_text(
            averages.table(sort_by=sort_key, row_limit=TOP_OPERATORS) + "\n", encoding="utf-8"
        )
        ranked = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP_OPERATORS]
        self.top_operators = [
            {
                "name": e.key,
                "calls": e.count,
                "self_cpu_ms": round(e.self_cpu_time_total / 1000, 3),
                "cpu_total_ms": round(e.cpu_time_total / 1000, 3),
            }
            for e in ranked
        ]
        self.trace = f"{PROFILE_DIR}/{TRACE_FILE}"
        log.info(
            "profiler: %d steps traced to %s (top operators in %s)",
            self._recorded,
            folder / TRACE_FILE,
            folder / TOP_OPERATORS_FILE,
        )


# --- the monitor the training loop calls ------------------------------------------------------------------------


@dataclass
class _FirstStep:
    """ReLU input statistics of the first step (PoorWeightInitialization)."""

    handles: list[Any] = field(default_factory=list)
    dead: list[tuple[str, torch.Tensor]] = field(default_factory=list)


class TrainingMonitor:
    """Evaluates :data:`RULES` and profiles the training loop; the main process reports.

    The loop calls :meth:`start_epoch`, iterates :meth:`timed` batches, calls :meth:`before_step`,
    :meth:`after_backward` (before ``optimizer.step()``), :meth:`after_step`, and :meth:`end_epoch` with the loss
    history. A non-finite loss or gradient raises :class:`TrainingDiverged`; :meth:`write` saves ``diagnostics.json``
    whatever happened.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        device: torch.device,
        *,
        num_classes: int,
        output_dir: str | Path | None,
        fresh: bool = True,
    ) -> None:
        self.t = {name: getattr(args, name, spec.default) for name, spec in _THRESHOLDS.items()}
        self.interval = int(getattr(args, "rule_interval", RULE_INTERVAL.default))
        self.device = device
        self.num_classes = num_classes
        self.output_dir = Path(output_dir) if output_dir else None
        self.fresh = fresh
        self.results = {name: RuleResult() for name in RULE_NAMES}
        if not fresh:
            self.results["PoorWeightInitialization"].detail = "not checked: the run resumed from a checkpoint"
        self.epochs: list[EpochProfile] = []
        main = distributed.is_main_process()
        steps = int(getattr(args, "profile_steps", PROFILE_STEPS.default))
        self.profiler = StepProfiler(steps if main else 0, self.output_dir, device)
        self._epoch = 0
        self._step_in_run = 0
        self._class_counts: torch.Tensor | None = None
        self._first: _FirstStep | None = None
        self._epoch_start = 0.0
        self._start = time.perf_counter()

    # -- the loop's calls --
    def start_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self.epochs.append(EpochProfile(epoch=epoch + 1))
        if self._class_counts is None:
            self._class_counts = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
        self._epoch_start = time.perf_counter()

    def timed(self, batches: Iterable[Any]) -> Iterator[Any]:
        """The batches, with the time spent waiting for each (data loading and the copy to the device) counted."""
        iterator = iter(batches)
        current = self.epochs[-1]
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                current.data_seconds += time.perf_counter() - start
                return
            current.data_seconds += time.perf_counter() - start
            yield batch

    def before_step(self, model: nn.Module) -> None:
        self.profiler.before_step()
        if self._step_in_run == 0 and self.fresh:
            self._first = _FirstStep()
            for name, module in model.named_modules():
                if isinstance(module, nn.ReLU):
                    self._first.handles.append(module.register_forward_pre_hook(self._relu_probe(name)))

    def _relu_probe(self, name: str) -> Any:
        def probe(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            assert self._first is not None
            self._first.dead.append((name, (inputs[0].detach() <= 0).float().mean()))

        return probe

    def after_backward(
        self, step: int, loss: float, targets: torch.Tensor, parameters: list[tuple[str, nn.Parameter]]
    ) -> None:
        """Checks on this step's loss and gradients (call before ``optimizer.step()``)."""
        epoch = self._epoch
        if not math.isfinite(loss):
            self._fire("ExplodingTensor", f"non-finite training loss ({loss}) at epoch {epoch + 1}, step {step + 1}")
            raise TrainingDiverged(
                f"non-finite training loss ({loss}) at epoch {epoch + 1}, step {step + 1}: stopping (ExplodingTensor)"
            )
        assert self._class_counts is not None
        if len(self.epochs) == 1:
            self._class_counts += torch.bincount(targets, minlength=self.num_classes)[: self.num_classes]
        if self._first is not None:
            self._check_first_step(loss)
        if self._step_in_run % self.interval == 0:
            self._check_gradients(step, parameters)

    def after_step(self, images: int) -> None:
        self.epochs[-1].images += images
        self._step_in_run += 1
        self.profiler.after_step()

    def end_train_pass(self) -> None:
        """The training pass of the epoch is over (validation is not part of its time)."""
        self.epochs[-1].train_seconds = time.perf_counter() - self._epoch_start
        self.profiler.finish()

    def end_epoch(self, train_loss: list[float], valid_loss: list[float], images: int | None = None) -> None:
        """Epoch rules on the loss history (all epochs so far, resumed ones included); report on the main process."""
        if images is not None:  # all processes together
            self.epochs[-1].images = images
        if len(self.epochs) == 1:
            self._check_classes()
        self._check_loss_not_decreasing(train_loss)
        self._check_overfit(train_loss, valid_loss)
        if distributed.is_main_process():
            for line in self.metric_lines():
                log.info(line)

    # -- the rules --
    def _fire(self, rule: str, detail: str) -> None:
        result = self.results[rule]
        if not result.found:
            self.results[rule] = RuleResult(ISSUES_FOUND, self._epoch + 1, detail)
            if distributed.is_main_process():
                log.warning("rule %s: %s: %s", rule, ISSUES_FOUND, detail)

    def _check_first_step(self, loss: float) -> None:
        assert self._first is not None
        first, self._first = self._first, None
        for handle in first.handles:
            handle.remove()
        chance = math.log(self.num_classes)
        limit = self.t["poor_init_loss_ratio"] * chance
        if loss > limit:
            self._fire(
                "PoorWeightInitialization",
                f"first loss {loss:.4g} is above {self.t['poor_init_loss_ratio']:g} x chance level {chance:.4g}",
            )
        if first.dead:
            shares = torch.stack([share for _, share in first.dead]).tolist()
            worst = max(range(len(shares)), key=shares.__getitem__)
            if shares[worst] >= self.t["poor_init_dead_fraction"]:
                self._fire(
                    "PoorWeightInitialization",
                    f"{shares[worst]:.1%} of the inputs of ReLU {first.dead[worst][0]!r} are <= 0 at the first step "
                    "(a dead layer)",
                )
        result = self.results["PoorWeightInitialization"]
        if not result.found:
            result.detail = f"first loss {loss:.4g} (chance level {chance:.4g}); no dead ReLU"

    def _check_gradients(self, step: int, parameters: list[tuple[str, nn.Parameter]]) -> None:
        named = [(name, p.grad) for name, p in parameters if p.grad is not None and p.grad.numel()]
        if not named:
            return
        grads = [g.detach() for _, g in named]
        l1 = torch.stack(torch._foreach_norm(grads, 1)) if hasattr(torch, "_foreach_norm") else None
        if l1 is None:  # pragma: no cover - every supported torch has _foreach_norm
            l1 = torch.stack([g.abs().sum() for g in grads])
        sizes = torch.tensor([g.numel() for g in grads], dtype=l1.dtype, device=l1.device)
        means = (l1 / sizes).tolist()
        where = f"epoch {self._epoch + 1}, step {step + 1}"
        bad = [name for (name, _), m in zip(named, means, strict=True) if not math.isfinite(m)]
        if bad:
            self._fire("ExplodingTensor", f"non-finite gradient of {bad[0]} at {where}")
            raise TrainingDiverged(f"non-finite gradient of {bad[0]} at {where}: stopping (ExplodingTensor)")
        low = min(range(len(means)), key=means.__getitem__)
        high = max(range(len(means)), key=means.__getitem__)
        if means[low] < self.t["vanishing_gradient_threshold"]:
            self._fire(
                "VanishingGradient",
                f"mean |gradient| of {named[low][0]} is {means[low]:.3g} at {where} "
                f"(threshold {self.t['vanishing_gradient_threshold']:g})",
            )
        if means[high] > self.t["exploding_gradient_threshold"]:
            self._fire(
                "ExplodingTensor",
                f"mean |gradient| of {named[high][0]} is {means[high]:.3g} at {where} "
                f"(threshold {self.t['exploding_gradient_threshold']:g})",
            )
        for rule, value, name in (
            ("VanishingGradient", means[low], named[low][0]),
            ("ExplodingTensor", means[high], named[high][0]),
        ):
            if not self.results[rule].found:
                kind = "smallest" if rule == "VanishingGradient" else "largest"
                self.results[rule].detail = f"{kind} mean |gradient| checked: {value:.3g} ({name}) at {where}"

    def _check_classes(self) -> None:
        assert self._class_counts is not None
        counts = [int(c) for c in distributed.all_reduce_sum(self._class_counts.tolist(), self.device)]
        ratio = max(counts) / min(counts) if min(counts) else math.inf
        seen = ", ".join(f"{i + 1}: {c}" for i, c in enumerate(counts))
        if ratio > self.t["class_imbalance_ratio"]:
            self._fire(
                "ClassImbalance",
                f"training photos per count {{{seen}}}: most common / rarest = {ratio:.3g} "
                f"(threshold {self.t['class_imbalance_ratio']:g})",
            )
        else:
            self.results["ClassImbalance"].detail = f"training photos per count {{{seen}}}: ratio {ratio:.3g}"

    def _check_loss_not_decreasing(self, train_loss: list[float]) -> None:
        patience = int(self.t["loss_patience"])
        if len(train_loss) <= patience:
            if not self.results["LossNotDecreasing"].found:
                self.results["LossNotDecreasing"].detail = f"needs more than {patience} epochs to judge"
            return
        before, recent = min(train_loss[:-patience]), min(train_loss[-patience:])
        if recent > before * (1 - self.t["loss_min_decrease"]):
            self._fire(
                "LossNotDecreasing",
                f"best training loss of the last {patience} epochs {recent:.4g} is not "
                f"{self.t['loss_min_decrease']:.0%} below the best before them {before:.4g}",
            )
        elif not self.results["LossNotDecreasing"].found:
            self.results["LossNotDecreasing"].detail = f"training loss {before:.4g} -> {recent:.4g}"

    def _check_overfit(self, train_loss: list[float], valid_loss: list[float]) -> None:
        patience = int(self.t["overfit_patience"])
        best = min(range(len(valid_loss)), key=valid_loss.__getitem__)
        since = len(valid_loss) - 1 - best
        rise = valid_loss[-1] / valid_loss[best] - 1 if valid_loss[best] > 0 else 0.0
        if since >= patience and rise > self.t["overfit_tolerance"] and train_loss[-1] < train_loss[best]:
            self._fire(
                "Overfit",
                f"validation loss {valid_loss[-1]:.4g} is {rise:.0%} above its best {valid_loss[best]:.4g} "
                f"(epoch {best + 1}) while the training loss fell {train_loss[best]:.4g} -> {train_loss[-1]:.4g}",
            )
        elif not self.results["Overfit"].found:
            self.results["Overfit"].detail = f"best validation loss {valid_loss[best]:.4g} at epoch {best + 1}"

    # -- reporting --
    def metric_lines(self) -> list[str]:
        """``rule:<Name>=0|1`` for every rule and ``profile:images_per_second=<float>`` of the last epoch."""
        lines = [format_metric(f"{RULE_PREFIX}{name}", int(self.results[name].found)) for name in RULE_NAMES]
        if self.epochs:
            lines.append(format_metric(IMAGES_PER_SECOND, self.epochs[-1].images_per_second))
        return lines

    @property
    def issues(self) -> list[str]:
        return [name for name in RULE_NAMES if self.results[name].found]

    def profile(self) -> dict[str, Any]:
        images = sum(e.images for e in self.epochs)
        train = sum(e.train_seconds for e in self.epochs)
        data = sum(e.data_seconds for e in self.epochs)
        profile: dict[str, Any] = {
            "images_per_second": round(images / train, 3) if train > 0 else 0.0,
            "data_seconds": round(data, 4),
            "compute_seconds": round(max(0.0, train - data), 4),
            "peak_memory_mb": round(peak_rss_mb(), 1),
            "images": images,
            "wall_seconds": round(time.perf_counter() - self._start, 3),
            "device": str(self.device),
            "epochs": [e.to_json() for e in self.epochs],
            "trace": self.profiler.trace,
            "top_operators": self.profiler.top_operators,
        }
        if self.device.type == "cuda":
            profile["peak_cuda_memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return profile

    def to_json(self) -> dict[str, Any]:
        rules = {name: {"status": r.status, "epoch": r.epoch, "detail": r.detail} for name, r in self.results.items()}
        return {"rules": rules, "profile": self.profile()}

    def write(self) -> Path | None:
        """``diagnostics.json`` in the output folder (main process only); also after a failure."""
        self.profiler.finish()
        if self.epochs and self.epochs[-1].train_seconds == 0:  # stopped inside an epoch
            self.epochs[-1].train_seconds = time.perf_counter() - self._epoch_start
        if self.output_dir is None or not distributed.is_main_process():
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / DIAGNOSTICS_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        issues = self.issues
        log.info(
            "diagnostics written to %s: %s", path, f"issues found by {', '.join(issues)}" if issues else "no issues"
        )
        return path
