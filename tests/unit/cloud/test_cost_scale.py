"""`bincount cost` for the full dataset and several instances: the images it assumes, the manifest job and S3
requests, sharded extraction and data-parallel training, measured CPU throughputs named as such."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bincount.cli import main
from bincount.cloud import cost
from bincount.cloud.cost import CostModel, Recipe, full_dataset

OURS = Recipe(
    name="ours",
    tuning_instance_type="ml.m5.large",
    training_instance_type="ml.g4dn.xlarge",
    endpoint_instance_type="ml.t2.medium",
    tuning_jobs=4,
    epochs=4,
    feature_cache=True,
    use_spot=True,
    dataset="full",
)
NO_OVERHEAD = CostModel(job_overhead_seconds=0.0)


def step(run: cost.RunCost, name: str) -> cost.JobCost:
    (found,) = [j for j in run.jobs if j.step == name]
    return found


def test_full_dataset_is_the_kept_share_of_abid_split_80_10_10() -> None:
    data = full_dataset()
    assert data.total == cost.FULL_IMAGES == round(536_000 * 292 / 515)
    assert (data.train, data.valid) == (round(0.8 * data.total), round(0.1 * data.total))


def test_sharded_extraction_costs_the_same_instance_hours_in_less_time() -> None:
    one = step(NO_OVERHEAD.run(OURS, full_dataset()), "ExtractFeatures")
    four = step(NO_OVERHEAD.run(replace(OURS, extraction_instances=4), full_dataset()), "ExtractFeatures")
    assert four.instances == 4 and four.hours == pytest.approx(one.hours)
    assert four.backbone_images == one.backbone_images == 2 * (full_dataset().train + full_dataset().valid)
    # Each job pays its start-up once per instance.
    with_overhead = CostModel().run(replace(OURS, extraction_instances=4), full_dataset())
    assert step(with_overhead, "ExtractFeatures").hours == pytest.approx(
        four.hours + 4 * cost.ASSUMED_JOB_OVERHEAD_SECONDS / 3600
    )


def test_multi_instance_training_splits_the_head_and_runs_the_test_on_rank_0_while_the_others_wait() -> None:
    data = full_dataset()
    two = step(NO_OVERHEAD.run(replace(OURS, training_instances=2), data), "Train")
    rate = cost.BACKBONE_IMAGES_PER_SECOND["ml.g4dn.xlarge"]
    per_instance = 4 * (data.train + data.valid) / 2 / cost.ASSUMED_HEAD_SAMPLES_PER_SECOND + data.test / rate
    assert two.hours == pytest.approx(2 * per_instance / 3600)


def test_full_run_adds_the_manifest_job_s3_requests_and_storage() -> None:
    run = CostModel().run(OURS, full_dataset())
    manifest = step(run, "BuildFullManifest")
    requests = cost.ASSUMED_ABID_IMAGES + -(-cost.ASSUMED_ABID_IMAGES // 1000) + cost.FULL_IMAGES
    seconds = cost.ASSUMED_JOB_OVERHEAD_SECONDS + requests / cost.ASSUMED_S3_REQUESTS_PER_SECOND
    assert manifest.instance_type == "ml.m5.large" and manifest.hours == pytest.approx(seconds / 3600)
    charges = {c.item: c for c in run.charges}
    assert charges["S3 COPY (photos)"].usd == pytest.approx(cost.FULL_IMAGES * 0.005 / 1000)
    assert charges["S3 GET (metadata)"].quantity == cost.ASSUMED_ABID_IMAGES
    assert run.on_demand_usd == pytest.approx(sum(j.on_demand_usd for j in run.jobs) + run.other_usd)
    assert run.storage_usd_per_month == pytest.approx(cost.FULL_IMAGES * cost.PHOTO_BYTES / 1e9 * 0.023)
    subset = CostModel().run(replace(OURS, dataset="subset"), full_dataset())
    assert not subset.charges and "BuildFullManifest" not in {j.step for j in subset.jobs}


def test_cpu_throughputs_are_the_measurement_scaled_by_vcpus() -> None:
    assert cost.MEASURED_EXTRACTION_PHOTOS_PER_SECOND > 0
    per_vcpu = 2 * cost.MEASURED_EXTRACTION_PHOTOS_PER_SECOND / 2
    assert cost.BACKBONE_IMAGES_PER_SECOND["ml.m5.xlarge"] == pytest.approx(4 * per_vcpu, abs=0.1)
    sources = cost.throughput_sources()
    assert sources["ml.m5.xlarge"].startswith("measured") and sources["ml.g4dn.xlarge"].startswith("estimate")
    assert set(cost.BACKBONE_IMAGES_PER_SECOND) == set(cost.ASSUMED_BACKBONE_IMAGES_PER_SECOND)


def test_command_reports_the_full_runs_images_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["cost", "--json", "--set", "dataset=full", "--set", "extractionInstanceCount=4"]
    assert main([*args, "--set", "trainingInstanceCount=2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "full" and report["images"] == cost.FULL_IMAGES
    assert report["onDemandUsd"] > report["spotUsd"] > 0 and report["hours"] > 0
    assert report["onDemandUsd"] == pytest.approx(report["ours"]["onDemandUsd"])
    jobs = {j["step"]: j for j in report["ours"]["jobs"]}
    assert list(jobs) == ["BuildFullManifest", "ExtractFeatures", "Tune (trials)", "Train"]
    assert (jobs["ExtractFeatures"]["instances"], jobs["Train"]["instances"]) == (4, 2)
    assert "fullDatasetNote" in report and "measured" in report["assumptions"]["measuredNote"]


def test_command_table_names_the_scale_and_the_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--set", "dataset=full"]) == 0
    out = capsys.readouterr().out
    assert f"Dataset: {cost.FULL_IMAGES:,} photos" in out and "BuildFullManifest" in out
    assert "S3 COPY (photos)" in out and "Throughputs: CPU types: measured" in out


def test_default_command_reports_the_subset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "subset" and report["images"] == 10_441 and report["ours"]["charges"] == []


@pytest.mark.parametrize("override", ["dataset=huge", "extractionInstanceCount=0", "trainingInstanceCount=two"])
def test_command_refuses_bad_scale_settings(override: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--set", override]) == 2
    assert override.split("=")[0] in capsys.readouterr().err


def test_command_warns_when_a_job_would_outrun_max_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--json", "--set", "dataset=full"]) == 0  # ExtractFeatures on one ml.m5.xlarge
    captured = capsys.readouterr()
    (warning,) = json.loads(captured.out)["warnings"]
    assert warning.startswith("ExtractFeatures needs about") and "extractionInstanceCount" in warning
    assert "warning: ExtractFeatures" in captured.err
    fast = ["--set", "trainingInstanceType=ml.g4dn.xlarge", "--set", "extractionInstanceCount=4"]
    assert main(["cost", "--json", "--set", "dataset=full", *fast]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
