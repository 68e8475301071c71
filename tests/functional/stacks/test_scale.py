"""Scale-out in the executed state machine (moto): the full dataset's cached manifest job, sharded extraction on
several instances, multi-instance training; the default run unchanged. Requests are checked against botocore's
SageMaker service model."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from bincount.cloud.settings import SettingsError, load_settings
from stacks.pipeline import definition as d
from stacks.pipeline import scale
from stacks.pipeline.requests import RUN_TAG
from tests.functional.stacks.test_state_machine import BUCKET, FEATURES_DATA, channels
from tests.functional.stacks.test_state_machine import deploy as deploy  # the fixture, shared

FAST = {"endpointPollSeconds": 0}
FULL = {**FAST, "dataset": "full", "extractionInstanceCount": 3, "trainingInstanceCount": 2}
SAGEMAKER_MODEL = botocore.session.get_session().get_service_model("sagemaker")
# What DescribeTrainingJob echoes of a CreateTrainingJob request (moto records the request as sent).
REQUEST_FIELDS = (
    "TrainingJobName",
    "AlgorithmSpecification",
    "RoleArn",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
)


def valid_request(operation: str, request: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``request`` cut to the operation's input fields, with no error from botocore's validator."""
    shape = SAGEMAKER_MODEL.operation_model(operation).input_shape
    sent = {k: v for k, v in request.items() if k in fields and k in shape.members}
    report = ParamValidator().validate(sent, shape)
    assert not report.has_errors(), report.generate_report()
    return sent


def shards_uri(features_job: dict[str, Any]) -> str:
    return f"s3://{BUCKET}/jobs/features/{features_job['TrainingJobName']}/shards/"


def distribution(request: dict[str, Any]) -> dict[str, str]:
    return {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in request["InputDataConfig"]
    }


def test_full_dataset_builds_the_manifest_once_extracts_sharded_and_trains_on_several_instances(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run(FULL)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(scale.CHECK_FULL_MANIFEST) and run.entered(scale.BUILD_FULL_MANIFEST)
    assert not run.entered(d.PREPARE_DATASET) and not run.entered(d.EXTRACT_FEATURES)
    assert run.copied == {}, "no photo goes through Step Functions"
    # The summary points at the manifest job's counts instead of the copy map's.
    assert run.output["datasetResults"] == f"s3://{BUCKET}/full/summary.json"
    assert run.output["imagesNotCopied"] is None
    jobs = pipeline.training_jobs()
    assert set(jobs) == {"manifest", "features", "train"}
    manifest = valid_request("CreateTrainingJob", jobs["manifest"], REQUEST_FIELDS)
    assert manifest["HyperParameters"]["sagemaker_program"] == "build_manifest.py"
    assert manifest["HyperParameters"]["bucket"] == BUCKET
    assert manifest["ResourceConfig"]["InstanceCount"] == 1 and "InputDataConfig" not in manifest
    # ExtractFeaturesSharded: three instances, each its own share of the full dataset's train and valid photos.
    features = valid_request("CreateTrainingJob", jobs["features"], REQUEST_FIELDS)
    assert features["ResourceConfig"]["InstanceCount"] == 3
    assert channels(features) == {"train": f"s3://{BUCKET}/full/train/", "valid": f"s3://{BUCKET}/full/valid/"}
    assert distribution(features) == {"train": "ShardedByS3Key", "valid": "ShardedByS3Key"}
    assert features["HyperParameters"]["features-output"] == shards_uri(features)
    # Trials read every shard on one instance; the final job every shard and the test photos, on two instances.
    tuning = pipeline.tuning_request()["TrainingJobDefinition"]
    assert channels(tuning) == {"features": shards_uri(features)}
    assert tuning["ResourceConfig"]["InstanceCount"] == 1
    train = valid_request("CreateTrainingJob", jobs["train"], REQUEST_FIELDS)
    assert channels(train) == {"features": shards_uri(features), "test": f"s3://{BUCKET}/full/test/"}
    assert distribution(train) == {"features": "FullyReplicated", "test": "FullyReplicated"}
    assert train["ResourceConfig"]["InstanceCount"] == 2
    definition = SAGEMAKER_MODEL.operation_model("CreateHyperParameterTuningJob").input_shape.members[
        "TrainingJobDefinition"
    ]
    sent = {k: v for k, v in tuning.items() if k in definition.members}
    report = ParamValidator().validate(sent, definition)
    assert not report.has_errors(), report.generate_report()


def test_every_scale_task_state_sends_requests_aws_accepts_tagged_with_the_run_id(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run(FULL)  # run() checks every request against botocore's model of its API

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    sent = {r.state: r.parameters for r in run.requests}
    assert set(scale.TASK_STATES) <= set(sent)
    for state in (scale.BUILD_FULL_MANIFEST, scale.EXTRACT_FEATURES_SHARDED):
        assert sent[state]["Tags"] == [{"Key": RUN_TAG, "Value": run.output["runId"]}]
        assert run.output["runId"] in sent[state]["TrainingJobName"]


def test_a_cached_full_manifest_is_reused(deploy: Any) -> None:
    pipeline = deploy()
    pipeline.s3.put_object(Bucket=BUCKET, Key="full/manifest.json", Body=b"[]")

    run = pipeline.run(FULL)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(scale.CHECK_FULL_MANIFEST) and not run.entered(scale.BUILD_FULL_MANIFEST)
    assert set(pipeline.training_jobs()) == {"features", "train"}


def test_full_dataset_without_the_cache_trains_every_job_on_the_photos_on_several_instances(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({**FULL, "featureCache": False})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(scale.USE_FULL_PHOTO_CHANNELS) and not run.entered(scale.EXTRACT_FEATURES_SHARDED)
    photos = {name: f"s3://{BUCKET}/full/{name}/" for name in ("train", "valid", "test")}
    tuning = pipeline.tuning_request()["TrainingJobDefinition"]
    assert channels(tuning) == {k: photos[k] for k in ("train", "valid")}
    assert tuning["ResourceConfig"]["InstanceCount"] == 2
    train = valid_request("CreateTrainingJob", pipeline.training_jobs()["train"], REQUEST_FIELDS)
    assert channels(train) == photos and train["ResourceConfig"]["InstanceCount"] == 2


def test_subset_on_several_extraction_instances_shards_the_copied_photos(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run({**FAST, "extractionInstanceCount": 2})

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    assert run.entered(d.PREPARE_DATASET) and run.entered(scale.SHARD_SUBSET)
    features = valid_request("CreateTrainingJob", pipeline.training_jobs()["features"], REQUEST_FIELDS)
    assert channels(features) == {"train": f"s3://{BUCKET}/train/", "valid": f"s3://{BUCKET}/valid/"}
    assert distribution(features) == {"train": "ShardedByS3Key", "valid": "ShardedByS3Key"}
    assert features["ResourceConfig"]["InstanceCount"] == 2


def test_default_run_is_unchanged(deploy: Any) -> None:
    pipeline = deploy()

    run = pipeline.run(FAST)

    assert run.status == "SUCCEEDED", (run.error, run.cause, run.states)
    new_states = {name for name in vars(scale).values() if isinstance(name, str) and name[:1].isupper()}
    assert set(run.states) & new_states == {scale.CHOOSE_DATASET}
    jobs = pipeline.training_jobs()
    features = valid_request("CreateTrainingJob", jobs["features"], REQUEST_FIELDS)
    assert features["ResourceConfig"]["InstanceCount"] == 1 and "features-output" not in features["HyperParameters"]
    assert distribution(features) == {"train": "FullyReplicated", "valid": "FullyReplicated"}
    assert channels(jobs["train"]) == {"features": FEATURES_DATA, "test": f"s3://{BUCKET}/test/"}
    assert jobs["train"]["ResourceConfig"]["InstanceCount"] == 1
    assert pipeline.tuning_request()["TrainingJobDefinition"]["ResourceConfig"]["InstanceCount"] == 1


@pytest.mark.parametrize(
    "override",
    [
        {"dataset": "huge"},
        {"dataset": 1},
        {"extractionInstanceCount": 0},
        {"trainingInstanceCount": 101},
        {"trainingInstanceCount": "2"},
    ],
)
def test_bad_scale_settings_fail_before_any_job(deploy: Any, override: dict[str, Any]) -> None:
    pipeline = deploy()

    run = pipeline.run({**FAST, **override})

    assert run.status == "FAILED" and run.error == d.INVALID_SETTINGS_ERROR
    assert not run.entered(scale.CHOOSE_DATASET) and pipeline.training_jobs() == {}


@pytest.mark.parametrize(
    ("key", "raw"),
    [("dataset", "huge"), ("extractionInstanceCount", 0), ("trainingInstanceCount", "many"), ("dataset", 3)],
)
def test_bad_scale_settings_fail_the_synth_naming_the_key(key: str, raw: Any) -> None:
    with pytest.raises(SettingsError, match=f"setting '{key}'"):
        load_settings({key: raw}.get, {})


def test_scale_settings_parse_from_the_command_line() -> None:
    settings = load_settings({"dataset": "full", "extractionInstanceCount": "4", "trainingInstanceCount": 2}.get, {})
    assert (settings.dataset, settings.extraction_instance_count, settings.training_instance_count) == ("full", 4, 2)
    assert {"dataset", "extractionInstanceCount", "trainingInstanceCount"} <= set(settings.runtime_values())
