"""``bincount cost``: what one pipeline run and the idle endpoint cost with the current settings, against the
classic recipe (see :mod:`bincount.cloud.cost`).

The settings are the CDK app's: ``cdk.json``'s context read through :mod:`bincount.cloud.settings`, the table stacks/
uses (same defaults, same validation), with ``--set key=value`` overriding a key as ``npx cdk deploy -c key=value`` or
an execution input would. The dataset size comes from the manifest the app deploys (``maxImagesPerCount`` applied).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bincount.paths import CDK_JSON


def add_cost_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cost",
        help="estimate what one pipeline run and the idle endpoint cost, against the classic recipe",
        description=(__doc__ or "").split("\n\n")[0],
    )
    p.add_argument(
        "--cdk-json",
        type=Path,
        default=CDK_JSON,
        help="the CDK app's cdk.json whose context holds the settings (default: the checkout's)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, as -c KEY=VALUE does for cdk deploy (repeatable), e.g. --set featureCache=false",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_cost)


def _overrides(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        found[key.strip()] = value
    return found


def load_cost_settings(cdk_json: Path, overrides: dict[str, str], environ: dict[str, str]) -> Any:
    """The app's Settings from ``cdk_json``'s context plus ``overrides`` (strings, parsed like ``-c``)."""
    from bincount.cloud.settings import SETTING_SPECS, load_settings

    context = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    known = {spec.key for spec in SETTING_SPECS}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; settings: {', '.join(sorted(known))}")
    context = {**context, **overrides}
    return load_settings(context.get, environ)


def dataset_from(max_images_per_count: int | None) -> Any:
    from bincount.cloud.cost import Dataset
    from bincount.data.manifest import build_manifest, load_file_list, split_counts

    counts = split_counts(build_manifest(load_file_list(), max_per_class=max_images_per_count))
    return Dataset(**{split: sum(counts.get(split, {}).values()) for split in ("train", "valid", "test")})


def dataset_for(settings: Any) -> Any:
    """The photos a run trains on: the subset's manifest, or the full dataset's estimated size."""
    if getattr(settings, "dataset", "subset") == "full":
        from bincount.cloud.cost import full_dataset

        return full_dataset()
    return dataset_from(settings.max_images_per_count)


def recipe_from(settings: Any) -> Any:
    from bincount.cloud.cost import Recipe

    return Recipe(
        name="ours",
        tuning_instance_type=settings.tuning_instance_type,
        training_instance_type=settings.training_instance_type,
        endpoint_instance_type=settings.endpoint_instance_type,
        tuning_jobs=settings.tuning_max_jobs,
        epochs=settings.epochs,
        feature_cache=settings.feature_cache,
        use_spot=settings.use_spot,
        dataset=settings.dataset,
        extraction_instances=settings.extraction_instance_count,
        training_instances=settings.training_instance_count,
    )


def run_cost(args: argparse.Namespace) -> int:
    from bincount.cloud.cost import CostError, compare, format_table

    try:
        settings = load_cost_settings(args.cdk_json, _overrides(args.set), dict(os.environ))
        comparison = compare(recipe_from(settings), dataset_for(settings))
    except (OSError, ValueError, CostError) as e:  # SettingsError and CostError are ValueErrors
        print(f"bincount cost: {e}", file=sys.stderr)
        return 2
    warnings = runtime_warnings(comparison.ours, settings.max_runtime_seconds)
    if args.json:
        print(json.dumps({**comparison.to_json(), "warnings": warnings}, indent=2))
    else:
        print(format_table(comparison))
    for warning in warnings:
        print(f"bincount cost: warning: {warning}", file=sys.stderr)
    return 0


def runtime_warnings(run: Any, max_runtime_seconds: int) -> list[str]:
    """Jobs whose estimated run on each instance exceeds maxRuntimeSeconds (SageMaker would stop them)."""
    hints = {
        "ExtractFeatures": "more extractionInstanceCount or a GPU trainingInstanceType",
        "Train": "more trainingInstanceCount or a GPU trainingInstanceType",
        "Tune (trials)": "featureCache true or a larger tuningInstanceType",
    }
    found = []
    for job in run.jobs:
        seconds = job.hours * 3600 / (job.jobs * job.instances)
        if job.step in hints and seconds > max_runtime_seconds:
            found.append(
                f"{job.step} needs about {seconds / 3600:.1f} h per instance, more than maxRuntimeSeconds "
                f"({max_runtime_seconds} s): use {hints[job.step]}, or raise maxRuntimeSeconds (and maxWaitSeconds)"
            )
    return found
