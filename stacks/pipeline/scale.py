"""Scale-out states of the pipeline (docs/design.md §12): the full dataset and multi-instance jobs.

Settings ``dataset`` (``subset`` | ``full``), ``extractionInstanceCount`` and ``trainingInstanceCount`` are validated
per execution here. With the defaults (``subset``, 1, 1) the pipeline runs exactly as before; these states are only
entered when an execution asks for the full dataset or for more than one extraction instance.
"""

from __future__ import annotations

from typing import Any

from bincount.cloud.settings import DATASETS
from bincount.data.full_manifest import FULL_MANIFEST_KEY, FULL_PREFIX, FULL_SUMMARY_KEY, MANIFEST_INSTANCE_TYPE
from stacks.permissions import Arns, Permission
from stacks.pipeline import requests
from stacks.pipeline.asl import (
    ANY_ERROR,
    DATA_BUCKET,
    SAGEMAKER_ROLE_ARN,
    TRAINING_SOURCE_URL,
    State,
    format_string,
    pass_state,
    retry,
    sagemaker_task,
    sdk_task,
)
from stacks.storage import JOBS_PREFIX

MAX_INSTANCE_COUNT = 100
SHARDED = "ShardedByS3Key"  # bincount.training.sharding.SHARDED (not imported: stacks/ stays free of torch)
INSTANCE_COUNT_SETTINGS: tuple[str, ...] = ("extractionInstanceCount", "trainingInstanceCount")


def invalid_scale_rules() -> list[dict[str, Any]]:
    """Choice rules (any of them true = invalid) for the scale settings; their types are checked before."""
    rules: list[dict[str, Any]] = [
        {"Not": {"Or": [{"Variable": "$.config.dataset", "StringEquals": name} for name in DATASETS]}}
    ]
    for key in INSTANCE_COUNT_SETTINGS:
        rules.append({"Variable": f"$.config.{key}", "NumericLessThan": 1})
        rules.append({"Variable": f"$.config.{key}", "NumericGreaterThan": MAX_INSTANCE_COUNT})
    return rules


# --- states ------------------------------------------------------------------------------------------------------
CHOOSE_DATASET = "ChooseDataset"
CHECK_FULL_MANIFEST = "CheckFullManifest"
FULL_MANIFEST_CACHED = "FullManifestCached"
BUILD_FULL_MANIFEST = "BuildFullManifest"
RECORD_FULL_DATASET = "RecordFullDataset"
SHARD_FULL_DATASET = "ShardFullDataset"
SHARD_SUBSET = "ShardSubset"
EXTRACT_FEATURES_SHARDED = "ExtractFeaturesSharded"
USE_SHARDED_FEATURES = "UseShardedFeatures"
USE_FULL_PHOTO_CHANNELS = "UseFullPhotoChannels"
TASK_STATES: tuple[str, ...] = (CHECK_FULL_MANIFEST, BUILD_FULL_MANIFEST, EXTRACT_FEATURES_SHARDED)

MANIFEST_PROGRAM = "build_manifest.py"
MANIFEST_WORKERS = "64"
MANIFEST_MAX_RUNTIME_SECONDS = 6 * 3600
SHARDS_PREFIX = f"{JOBS_PREFIX}features/{{}}/shards/"  # {} = the extraction job's name


def _config_is(key: str, value: str) -> dict[str, Any]:
    return {"Variable": f"$.config.{key}", "StringEquals": value}


def _sharded_channel(name: str, prefix: str) -> dict[str, Any]:
    """A File-mode channel of the photos under ``<prefix><name>/``, each instance getting its own share of them."""
    channel = requests.photo_channel(name, prefix=prefix)
    channel["DataSource"]["S3DataSource"]["S3DataDistributionType"] = SHARDED
    return channel


def feature_cache_rules() -> list[dict[str, Any]]:
    """ChooseFeatureCache's first rules: the sharded extraction for the full dataset or several extraction
    instances, the full dataset's photo channels without the cache. The defaults match none of them."""
    cache_on = {"Variable": "$.config.featureCache", "BooleanEquals": True}
    return [
        {"And": [cache_on, _config_is("dataset", "full")], "Next": SHARD_FULL_DATASET},
        {
            "And": [cache_on, {"Variable": "$.config.extractionInstanceCount", "NumericGreaterThan": 1}],
            "Next": SHARD_SUBSET,
        },
        {**_config_is("dataset", "full"), "Next": USE_FULL_PHOTO_CHANNELS},
    ]


def dataset_states(
    *, prepare_subset: str, after: str, failure: str, ctx: requests.RequestContext, name_prefix: str
) -> dict[str, State]:
    """ChooseDataset: the subset's copy map as before, or the full dataset's manifest job unless its result is in
    the bucket already (one ListObjectsV2, not half a million state transitions)."""
    return {
        CHOOSE_DATASET: {
            "Type": "Choice",
            "Choices": [{**_config_is("dataset", "full"), "Next": CHECK_FULL_MANIFEST}],
            "Default": prepare_subset,
        },
        CHECK_FULL_MANIFEST: sdk_task(
            "s3:listObjectsV2",
            {"Bucket": DATA_BUCKET, "Prefix": FULL_MANIFEST_KEY, "MaxKeys": 1},
            result_selector={"KeyCount.$": "$.KeyCount"},
            result_path="$.fullManifest",
            retriers=[retry(ANY_ERROR, interval=1, attempts=5)],
            catch=failure,
            next_state=FULL_MANIFEST_CACHED,
        ),
        FULL_MANIFEST_CACHED: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fullManifest.KeyCount", "NumericGreaterThan": 0, "Next": RECORD_FULL_DATASET}],
            "Default": BUILD_FULL_MANIFEST,
        },
        BUILD_FULL_MANIFEST: sagemaker_task(
            "createTrainingJob.sync",
            manifest_job(ctx, name_prefix),
            result_path="$.fullManifest.job",
            catch=failure,
            next_state=RECORD_FULL_DATASET,
        ),
        # What the summary reports of the dataset, in PrepareDataset's shape: the counts are in full/summary.json
        # (the manifest job's), not known to the execution, so null here.
        RECORD_FULL_DATASET: pass_state(
            after,
            parameters={
                "counts": {"images": None, "copied": None, "notCopied": None},
                "ResultWriterDetails": {"Bucket": DATA_BUCKET, "Key": FULL_SUMMARY_KEY},
            },
            result_path="$.dataset",
        ),
    }


def manifest_job(ctx: requests.RequestContext, name_prefix: str) -> dict[str, Any]:
    """CreateTrainingJob running build_manifest.py on the training container: no channels, on-demand, one small
    instance (it waits on S3); it needs the network to read the public bucket (no network isolation)."""
    return {
        "TrainingJobName.$": format_string(f"{name_prefix}-manifest-{{}}", "$.run.id"),
        "AlgorithmSpecification": {"TrainingImage.$": "$.config.trainingImage", "TrainingInputMode": "File"},
        "RoleArn": SAGEMAKER_ROLE_ARN,
        "HyperParameters": {
            "sagemaker_program": MANIFEST_PROGRAM,
            "sagemaker_submit_directory": TRAINING_SOURCE_URL,
            "sagemaker_region": ctx.region,
            "sagemaker_container_log_level": "20",
            "bucket": DATA_BUCKET,
            "region": ctx.region,
            "workers": MANIFEST_WORKERS,
        },
        "OutputDataConfig": {"S3OutputPath": requests.s3_url(f"{JOBS_PREFIX}manifest/")},
        "ResourceConfig": {
            "InstanceType": MANIFEST_INSTANCE_TYPE,
            "InstanceCount": 1,
            "VolumeSizeInGB": requests.VOLUME_SIZE_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MANIFEST_MAX_RUNTIME_SECONDS},
        "Tags": requests.tags(),
    }


def sharded_extraction_job(ctx: requests.RequestContext) -> dict[str, Any]:
    """The feature-extraction job on ``extractionInstanceCount`` instances over ``$.sharding.extraction`` (sharded
    channels); each host uploads its shard under jobs/features/<job>/shards/."""
    job = requests.feature_extraction_job(ctx)
    job["HyperParameters"]["features-output.$"] = format_string(requests.s3_url(SHARDS_PREFIX), "$.run.featuresJobName")
    del job["InputDataConfig"]
    job["InputDataConfig.$"] = "$.sharding.extraction"
    resources = {k: v for k, v in job.pop("ResourceConfig").items() if k != "InstanceCount"}
    job["ResourceConfig"] = {**resources, "InstanceCount.$": "$.config.extractionInstanceCount"}
    return job


def _sharding(prefix: str) -> dict[str, Any]:
    features = requests.photo_channel(requests.FEATURES_CHANNEL)
    del features["DataSource"]["S3DataSource"]["S3Uri"]
    features["DataSource"]["S3DataSource"]["S3Uri.$"] = format_string(
        requests.s3_url(SHARDS_PREFIX), "$.run.featuresJobName"
    )
    return {
        "extraction": [_sharded_channel(name, prefix) for name in requests.EXTRACTION_CHANNELS],
        "features": features,
        "test": requests.photo_channel("test", prefix=prefix),
    }


def feature_states(*, tune: str, failure: str, ctx: requests.RequestContext) -> dict[str, State]:
    """ShardFullDataset / ShardSubset -> ExtractFeaturesSharded -> UseShardedFeatures, and UseFullPhotoChannels."""
    full_photos = requests.photo_channels(prefix=FULL_PREFIX)
    return {
        SHARD_FULL_DATASET: pass_state(
            EXTRACT_FEATURES_SHARDED, parameters=_sharding(FULL_PREFIX), result_path="$.sharding"
        ),
        SHARD_SUBSET: pass_state(EXTRACT_FEATURES_SHARDED, parameters=_sharding(""), result_path="$.sharding"),
        EXTRACT_FEATURES_SHARDED: sagemaker_task(
            "createTrainingJob.sync",
            sharded_extraction_job(ctx),
            result_path="$.features",
            catch=failure,
            next_state=USE_SHARDED_FEATURES,
        ),
        USE_SHARDED_FEATURES: pass_state(
            tune,
            parameters={
                "tuning.$": "States.Array($.sharding.features)",
                "training.$": "States.Array($.sharding.features, $.sharding.test)",
                "tuningInstanceCount": 1,
            },
            result_path="$.channels",
        ),
        USE_FULL_PHOTO_CHANNELS: pass_state(tune, parameters=full_photos, result_path="$.channels"),
    }


# --- IAM -----------------------------------------------------------------------------------------------------------
def execution_permissions(*, bucket_arn: str, public_bucket_arn: str) -> list[Permission]:
    """What the SageMaker role needs for the full dataset: the manifest job lists and reads the public metadata,
    copies the photos (reads them, writes full/), and the jobs read full/ channels."""
    return [
        Permission(
            "ListPublicMetadata",
            ["s3:ListBucket"],
            [public_bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["metadata/*"]}},
        ),
        Permission(
            "ReadPublicDataset",
            ["s3:GetObject"],
            [f"{public_bucket_arn}/metadata/*", f"{public_bucket_arn}/bin-images/*"],
            wildcard="FullDataset",
        ),
        Permission(
            "ReadWriteFullDataset",
            ["s3:GetObject", "s3:PutObject"],
            [f"{bucket_arn}/{FULL_PREFIX}*"],
            wildcard="FullDataset",
        ),
    ]


def state_machine_permissions(arns: Arns, *, bucket_arn: str) -> list[Permission]:
    """CheckFullManifest's listing and BuildFullManifest's job (<prefix>-manifest-<run id>)."""
    return [
        Permission(
            "CheckFullManifest",
            ["s3:ListBucket"],
            [bucket_arn],
            conditions={"StringLike": {"s3:prefix": [FULL_MANIFEST_KEY]}},
        ),
        Permission(
            "RunManifestJob",
            [
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            [arns.named("training-job", "manifest")],
            wildcard="ExecutionNamedJobs",
        ),
    ]
