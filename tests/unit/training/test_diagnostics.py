"""The in-process training rules and profile (bincount.training.diagnostics) on real tensors and real training steps.

Each rule fires on a case built to show its problem and stays quiet on a healthy run; the training loop is the real
``train_one_epoch`` / ``evaluate`` over small in-memory datasets (no photos: these run in seconds).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bincount.data.channel import collate_skipping_bad
from bincount.data.labels import NUM_CLASSES
from bincount.training.diagnostics import (
    DIAGNOSTICS_FILE,
    ISSUES_FOUND,
    NO_ISSUES_FOUND,
    RULES,
    TrainingDiverged,
    TrainingMonitor,
)
from bincount.training.metrics import RULE_NAMES, metric_definitions
from bincount.training.report import render_report
from bincount.training.train import evaluate, get_args_parser, train_one_epoch

FEATURES = 16


def options(*argv: str) -> object:
    return get_args_parser().parse_args(["--profile-steps", "0", *argv])


def separable(n_per_class: tuple[int, ...] = (24,) * NUM_CLASSES, seed: int = 0) -> TensorDataset:
    """Features that say their class (a one-hot direction plus noise): an easy, learnable problem."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    x = torch.randn(len(targets), FEATURES, generator=g) * 0.3
    x[torch.arange(len(targets)), targets] += 2.0
    return TensorDataset(x, targets)


def noise(n: int, seed: int) -> TensorDataset:
    """Random features with random labels: nothing to learn, everything to memorise."""
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, FEATURES, generator=g), torch.randint(0, NUM_CLASSES, (n,), generator=g))


def loader(dataset: TensorDataset, batch_size: int = 16, *, shuffle: bool = True) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate_skipping_bad,
        generator=torch.Generator().manual_seed(1),
    )


def mlp(hidden: int = 32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES))


def train(
    model: nn.Module,
    train_set: TensorDataset,
    valid_set: TensorDataset,
    *,
    epochs: int,
    lr: float = 1e-2,
    argv: tuple[str, ...] = (),
    output_dir: Path | None = None,
) -> TrainingMonitor:
    """The real loop of bincount.training.train with a monitor; returns the monitor (after writing diagnostics.json)."""
    device = torch.device("cpu")
    monitor = TrainingMonitor(options(*argv), device, num_classes=NUM_CLASSES, output_dir=output_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    criterion = nn.CrossEntropyLoss()
    train_loss: list[float] = []
    valid_loss: list[float] = []
    try:
        for epoch in range(epochs):
            monitor.start_epoch(epoch)
            stats = train_one_epoch(model, loader(train_set), criterion, optimizer, device, monitor=monitor)
            valid = evaluate(model, loader(valid_set, shuffle=False), criterion, device)
            train_loss.append(stats.loss)
            valid_loss.append(valid.loss)
            monitor.end_epoch(train_loss, valid_loss, images=stats.n)
    finally:
        monitor.write()
    return monitor


def statuses(monitor: TrainingMonitor) -> dict[str, str]:
    return {name: r.status for name, r in monitor.results.items()}


def only(rule: str) -> dict[str, str]:
    return {name: ISSUES_FOUND if name == rule else NO_ISSUES_FOUND for name in RULE_NAMES}


def test_healthy_run_finds_no_issue_and_reports_every_rule_each_epoch(tmp_path, caplog) -> None:
    caplog.set_level("INFO")
    monitor = train(mlp(), separable(), separable(seed=1), epochs=4, output_dir=tmp_path)
    assert statuses(monitor) == {name: NO_ISSUES_FOUND for name in RULE_NAMES}, monitor.to_json()["rules"]
    log = "\n".join(r.getMessage() for r in caplog.records)
    for definition in metric_definitions():
        values = [float(v) for v in re.findall(definition["Regex"], log)]
        if definition["Name"].startswith("rule:"):
            assert values == [0.0] * 4, definition["Name"]
        if definition["Name"] == "profile:images_per_second":
            assert len(values) == 4 and all(v > 0 for v in values)


def test_diagnostics_json_has_the_documented_shape(tmp_path) -> None:
    train(mlp(), separable(), separable(seed=1), epochs=2, output_dir=tmp_path)
    written = json.loads((tmp_path / DIAGNOSTICS_FILE).read_text())
    assert set(written) == {"rules", "profile"}
    assert set(written["rules"]) == set(RULE_NAMES)
    for result in written["rules"].values():
        assert set(result) == {"status", "epoch", "detail"}
        assert result["status"] in (ISSUES_FOUND, NO_ISSUES_FOUND)
        assert result["epoch"] is None or isinstance(result["epoch"], int)
        assert isinstance(result["detail"], str) and result["detail"]
    profile = written["profile"]
    for key in ("images_per_second", "data_seconds", "compute_seconds", "peak_memory_mb"):
        assert isinstance(profile[key], float) and profile[key] >= 0, key
    assert profile["images_per_second"] > 0 and profile["peak_memory_mb"] > 10
    assert [e["epoch"] for e in profile["epochs"]] == [1, 2]
    assert all(e["images"] == 120 for e in profile["epochs"])


def test_loss_not_decreasing_fires_when_nothing_learns() -> None:
    monitor = train(mlp(), separable(), separable(seed=1), epochs=3, lr=1e-12)
    assert statuses(monitor) == only("LossNotDecreasing")
    assert monitor.results["LossNotDecreasing"].epoch == 3  # the first epoch with --loss-patience 2 epochs behind it


def test_overfit_fires_when_memorising_noise() -> None:
    monitor = train(mlp(hidden=256), noise(80, seed=2), noise(80, seed=3), epochs=12, lr=1e-2)
    result = monitor.results["Overfit"]
    assert result.status == ISSUES_FOUND, monitor.to_json()["rules"]
    assert "validation loss" in result.detail and result.epoch is not None and result.epoch >= 3


class Scaled(nn.Module):
    """Multiplies its input by a constant: a stand-in for a saturated layer that lets almost no gradient through."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def test_vanishing_gradient_fires_when_gradients_are_tiny() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, NUM_CLASSES), Scaled(1e-9))
    monitor = train(model, separable(), separable(seed=1), epochs=1)
    result = monitor.results["VanishingGradient"]
    assert result.status == ISSUES_FOUND and result.epoch == 1
    assert "0.weight" in result.detail or "0.bias" in result.detail


def test_exploding_tensor_stops_at_the_first_non_finite_loss_and_still_writes_diagnostics(tmp_path) -> None:
    with pytest.raises(TrainingDiverged, match=r"non-finite training loss \(\w+\) at epoch 1, step 2"):
        train(mlp(), separable(), separable(seed=1), epochs=3, lr=1e30, output_dir=tmp_path)
    written = json.loads((tmp_path / DIAGNOSTICS_FILE).read_text())
    assert written["rules"]["ExplodingTensor"]["status"] == ISSUES_FOUND
    assert written["rules"]["ExplodingTensor"]["epoch"] == 1
    assert "step 2" in written["rules"]["ExplodingTensor"]["detail"]


def test_exploding_tensor_flags_huge_gradients_without_stopping() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FEATURES, NUM_CLASSES), Scaled(1e6))
    monitor = train(model, separable(), separable(seed=1), epochs=1, lr=1e-9)
    assert monitor.results["ExplodingTensor"].status == ISSUES_FOUND
    assert "mean |gradient|" in monitor.results["ExplodingTensor"].detail


def test_poor_weight_initialization_fires_on_huge_initial_weights() -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(1000)
    monitor = train(model, separable(), separable(seed=1), epochs=1)
    result = monitor.results["PoorWeightInitialization"]
    assert result.status == ISSUES_FOUND and "chance level" in result.detail


def test_poor_weight_initialization_fires_on_a_dead_relu_layer() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    monitor = train(model, separable(), separable(seed=1), epochs=1)
    result = monitor.results["PoorWeightInitialization"]
    assert result.status == ISSUES_FOUND and "ReLU '1'" in result.detail


def test_class_imbalance_fires_on_uneven_and_missing_counts() -> None:
    uneven = train(mlp(), separable((200, 20, 20, 20, 15)), separable(seed=1), epochs=1)
    assert uneven.results["ClassImbalance"].status == ISSUES_FOUND
    assert "13.3" in uneven.results["ClassImbalance"].detail
    missing = train(mlp(), separable((20, 20, 0, 20, 20)), separable(seed=1), epochs=1)
    assert (
        missing.results["ClassImbalance"].status == ISSUES_FOUND
        and "inf" in missing.results["ClassImbalance"].detail.lower()
    )
    # ABID's own spread (file_list.json: 1228 / 2299 / 2666 / 2373 / 1875 photos) is not an issue.
    abid = train(mlp(), separable((12, 23, 27, 24, 19)), separable(seed=1), epochs=1)
    assert abid.results["ClassImbalance"].status == NO_ISSUES_FOUND


def test_thresholds_are_options_of_both_entry_points() -> None:
    args = options("--loss-patience", "1", "--class-imbalance-ratio", "1.5", "--profile-steps", "2")
    assert (args.loss_patience, args.class_imbalance_ratio, args.profile_steps) == (1, 1.5, 2)
    monitor = train(
        mlp(), separable((30, 20, 20, 20, 20)), separable(seed=1), epochs=1, argv=("--class-imbalance-ratio", "1.2")
    )
    assert monitor.results["ClassImbalance"].status == ISSUES_FOUND
    helptext = get_args_parser().format_help()
    for spec in RULES:
        for threshold in spec.thresholds:
            assert f"--{threshold.name}" in helptext


def test_profiler_writes_a_chrome_trace_and_top_operators(tmp_path) -> None:
    device = torch.device("cpu")
    monitor = TrainingMonitor(options("--profile-steps", "2"), device, num_classes=NUM_CLASSES, output_dir=tmp_path)
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    monitor.start_epoch(0)
    train_one_epoch(model, loader(separable()), nn.CrossEntropyLoss(), optimizer, device, monitor=monitor)
    trace = json.loads((tmp_path / "profile" / "trace.json").read_text())
    assert any(e.get("name", "").startswith("aten::addmm") for e in trace["traceEvents"])
    table = (tmp_path / "profile" / "top_operators.txt").read_text()
    assert "Self CPU" in table
    names = [o["name"] for o in monitor.profiler.top_operators]
    assert names and any(n.startswith("aten::") for n in names)


def test_report_is_self_contained_and_names_every_rule(tmp_path) -> None:
    from bincount.training import plots

    monitor = train(mlp(), separable(), separable(seed=1), epochs=3, lr=1e-12)
    drawn = {
        "loss": plots.plot_losses([1.6, 1.6, 1.6], [1.7, 1.65, 1.66], tmp_path),
        "confusion": plots.plot_confusion([[2, 0, 0, 0, 0]] + [[0] * 5] * 4, tmp_path),
    }
    evaluation = {"accuracy": 0.4, "rmse": 1.1, "mae": 0.8, "n_test": 10, "per_class_accuracy": {"1": 1.0, "2": None}}
    page = render_report(evaluation, monitor.to_json(), drawn, title="run")
    for name in RULE_NAMES:
        assert name in page
    assert "Issues found by: LossNotDecreasing" in page
    assert page.count("data:image/png;base64,") == 2
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external resources"
    assert "images_per_second" in page and math.isfinite(monitor.profile()["images_per_second"])
