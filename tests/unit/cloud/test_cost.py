"""`bincount cost`: the estimate follows from its inputs, reads the CDK settings, and names what it rests on."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bincount.cli import main
from bincount.cloud import cost
from bincount.cloud.cost import CLASSIC, CostError, CostModel, Dataset, Recipe, compare

DATASET = Dataset(train=8000, valid=1000, test=1000)
OURS = Recipe(
    name="ours",
    tuning_instance_type="ml.m5.large",
    training_instance_type="ml.m5.xlarge",
    endpoint_instance_type="ml.t2.medium",
    tuning_jobs=4,
    epochs=4,
    feature_cache=True,
    use_spot=True,
)
NO_OVERHEAD = CostModel(job_overhead_seconds=0.0)


def step(run: cost.RunCost, name: str) -> cost.JobCost:
    (found,) = [j for j in run.jobs if j.step == name]
    return found


def test_classic_recipe_is_the_issues() -> None:
    assert (CLASSIC.tuning_jobs, CLASSIC.epochs, CLASSIC.training_epochs) == (6, 4, 20)
    assert (CLASSIC.tuning_instance_type, CLASSIC.training_instance_type) == ("ml.m5.2xlarge", "ml.g4dn.xlarge")
    assert not CLASSIC.feature_cache and not CLASSIC.use_spot


def test_hours_are_backbone_passes_over_throughput_plus_overhead() -> None:
    run = CostModel().run(CLASSIC, DATASET)
    trials = step(run, "Tune (trials)")
    per_trial_images = 4 * (8000 + 1000)
    assert trials.backbone_images == 6 * per_trial_images
    seconds = cost.ASSUMED_JOB_OVERHEAD_SECONDS + per_trial_images / cost.BACKBONE_IMAGES_PER_SECOND["ml.m5.2xlarge"]
    assert trials.hours == pytest.approx(6 * seconds / 3600)
    assert trials.on_demand_usd == pytest.approx(trials.hours * cost.PRICES_USD_PER_HOUR["ml.m5.2xlarge"][0])
    assert run.on_demand_usd == pytest.approx(sum(j.on_demand_usd for j in run.jobs))


def test_doubling_the_final_epochs_doubles_the_classic_training_compute() -> None:
    base = step(NO_OVERHEAD.run(CLASSIC, Dataset(train=8000, valid=1000, test=0)), "Train")
    doubled = step(NO_OVERHEAD.run(replace(CLASSIC, final_epochs=40), Dataset(8000, 1000, 0)), "Train")
    assert doubled.hours == pytest.approx(2 * base.hours)
    assert doubled.on_demand_usd == pytest.approx(2 * base.on_demand_usd)


def test_doubling_trials_doubles_the_tuning_cost() -> None:
    base = step(CostModel().run(CLASSIC, DATASET), "Tune (trials)")
    doubled = step(CostModel().run(replace(CLASSIC, tuning_jobs=12), DATASET), "Tune (trials)")
    assert doubled.on_demand_usd == pytest.approx(2 * base.on_demand_usd)


def test_the_cache_makes_trials_cheaper_and_runs_no_backbone_in_them() -> None:
    cached = CostModel().run(OURS, DATASET)
    uncached = CostModel().run(replace(OURS, feature_cache=False), DATASET)
    assert step(cached, "Tune (trials)").backbone_images == 0
    assert step(cached, "Tune (trials)").on_demand_usd < step(uncached, "Tune (trials)").on_demand_usd
    assert [j.step for j in cached.jobs] == ["ExtractFeatures", "Tune (trials)", "Train"]
    assert [j.step for j in uncached.jobs] == ["Tune (trials)", "Train"]
    # Extraction: both views of every train and valid photo once; the final job runs the backbone on the test only.
    assert step(cached, "ExtractFeatures").backbone_images == 2 * (8000 + 1000)
    assert step(cached, "Train").backbone_images == 1000
    assert cached.backbone_images < uncached.backbone_images


def test_spot_is_cheaper_than_on_demand_and_billed_follows_use_spot() -> None:
    run = CostModel().run(OURS, DATASET)
    assert run.spot_usd == pytest.approx(run.on_demand_usd * cost.ASSUMED_SPOT_PRICE_FRACTION)
    assert run.spot_usd < run.on_demand_usd
    assert run.billed_usd == run.spot_usd
    assert CostModel().run(replace(OURS, use_spot=False), DATASET).billed_usd == run.on_demand_usd


def test_endpoint_month_is_the_hosting_price_times_730_hours() -> None:
    run = CostModel().run(OURS, DATASET)
    assert run.endpoint_usd_per_month == pytest.approx(cost.PRICES_USD_PER_HOUR["ml.t2.medium"][1] * 730)


def test_ours_beats_the_classic_recipe_with_the_defaults() -> None:
    comparison = compare(OURS, DATASET)
    assert comparison.ours.on_demand_usd < comparison.classic.on_demand_usd
    assert comparison.classic.backbone_images / comparison.ours.backbone_images > 10


@pytest.mark.parametrize(
    ("field", "value"),
    [("tuning_instance_type", "ml.x9.huge"), ("training_instance_type", "ml.x9.huge")],
)
def test_an_unknown_instance_type_is_named(field: str, value: str) -> None:
    with pytest.raises(CostError, match=r"'ml\.x9\.huge'"):
        CostModel().run(replace(OURS, **{field: value}), DATASET)


def test_an_instance_without_a_throughput_assumption_is_named() -> None:
    model = CostModel(backbone_images_per_second={})
    with pytest.raises(CostError, match=r"no assumed ResNet-50 throughput for instance type 'ml\.m5\.xlarge'"):
        model.run(OURS, DATASET)


def test_the_endpoint_needs_a_hosting_price() -> None:
    with pytest.raises(CostError, match=r"hosting price for instance type 'ml\.p9\.mega'"):
        CostModel().run(replace(OURS, endpoint_instance_type="ml.p9.mega"), DATASET)


def test_every_priced_training_type_has_a_throughput_assumption() -> None:
    priced = {k for k, (training, _) in cost.PRICES_USD_PER_HOUR.items() if training is not None}
    assert priced == set(cost.ASSUMED_BACKBONE_IMAGES_PER_SECOND)


# --- the command ---------------------------------------------------------------------------------------------


def test_command_prints_the_table_with_date_region_and_assumptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    assert "Dataset: 10,441 photos" in out
    assert "ExtractFeatures" in out and "ml.m5.large" in out and "ml.g4dn.xlarge" in out
    assert f"us-east-1 as recorded on {cost.PRICES_RECORDED_ON}" in out
    assert "check them on https://aws.amazon.com/sagemaker/pricing/" in out
    assert "assumptions, not measurements" in out


def test_command_json_follows_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--json", "--set", "maxImagesPerCount=100", "--set", "featureCache=false"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["region"] == "us-east-1" and report["pricesRecordedOn"] == cost.PRICES_RECORDED_ON
    assert report["ours"]["dataset"]["total"] == 500 == report["classic"]["dataset"]["total"]
    assert report["ours"]["recipe"]["feature_cache"] is False
    assert [j["step"] for j in report["ours"]["jobs"]] == ["Tune (trials)", "Train"]
    assert report["assumptions"]["jobOverheadSeconds"] == cost.ASSUMED_JOB_OVERHEAD_SECONDS


def test_command_reads_the_given_cdk_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"epochs": 8, "tuningMaxJobs": 2, "tuningMaxParallelJobs": 1}}))
    assert main(["cost", "--json", "--cdk-json", str(cdk_json)]) == 0
    recipe = json.loads(capsys.readouterr().out)["ours"]["recipe"]
    assert (recipe["epochs"], recipe["tuning_jobs"]) == (8, 2)
    assert recipe["tuning_instance_type"] == "ml.m5.large"  # the settings' default


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("tuningInstanceType=ml.x9.huge", "'ml.x9.huge'"),
        ("epochs=four", "setting 'epochs'"),
        ("noSuchSetting=1", "unknown setting(s) noSuchSetting"),
        ("epochs", "KEY=VALUE"),
    ],
)
def test_command_errors_name_the_cause(override: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bincount cost: ") and says in err
