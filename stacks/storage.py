"""The data and artifact bucket, its access-log bucket, and the dataset manifest uploaded at deploy.

Key layout of the data bucket:

- ``train/ valid/ test/<count>/<id>.jpg``: the dataset in the channel layout (docs/design.md §2), copied by
  PrepareDataset;
- ``manifests/manifest.json``: the dataset manifest (built at synth from ``data/file_list.json``);
- ``jobs/``: tuning and training outputs, Debugger and Profiler data (expire after 90 days);
- ``checkpoints/<training job>/``: spot checkpoints (expire after 30 days);
- ``map-runs/``: PrepareDataset's Distributed Map results (expire after 30 days);
- ``capture/<endpoint>/<variant>/<yyyy>/<mm>/<dd>/<hh>/*.jsonl``: requests and responses the endpoint captured with
  ``dataCapturePercent`` > 0 (customers' photos: expire after 30 days).

Both buckets are emptied and deleted by ``cdk destroy``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from bincount.data.manifest import SPLITS, build_manifest, load_file_list, manifest_json

MANIFEST_PREFIX = "manifests/"
MANIFEST_FILE = "manifest.json"
MANIFEST_KEY = MANIFEST_PREFIX + MANIFEST_FILE
JOBS_PREFIX = "jobs/"
CHECKPOINTS_PREFIX = "checkpoints/"
MAP_RUNS_PREFIX = "map-runs/"
CAPTURE_PREFIX = "capture/"
CAPTURE_RETENTION_DAYS = 30
CHANNEL_PREFIXES: tuple[str, ...] = tuple(f"{split}/" for split in SPLITS)


def dataset_manifest(max_images_per_count: int | None) -> str:
    """The manifest JSON array (id, count, split, source and destination keys) of the configured subset."""
    return manifest_json(build_manifest(load_file_list(), max_per_class=max_images_per_count))


class DataStorage(Construct):
    """The data bucket (dataset, manifest, job outputs) and its server-access-log bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, max_images_per_count: int | None) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="ExpireAccessLogs", expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        self.bucket = s3.Bucket(
            self,
            "DataBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireJobOutputs", prefix=JOBS_PREFIX, expiration=Duration.days(90)),
                s3.LifecycleRule(id="ExpireCheckpoints", prefix=CHECKPOINTS_PREFIX, expiration=Duration.days(30)),
                s3.LifecycleRule(id="ExpireMapRunResults", prefix=MAP_RUNS_PREFIX, expiration=Duration.days(30)),
                s3.LifecycleRule(
                    id="ExpireCapturedRequests",
                    prefix=CAPTURE_PREFIX,
                    expiration=Duration.days(CAPTURE_RETENTION_DAYS),
                ),
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=Duration.days(30),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        self.manifest_deployment = s3deploy.BucketDeployment(
            self,
            "Manifest",
            sources=[s3deploy.Source.data(MANIFEST_FILE, dataset_manifest(max_images_per_count))],
            destination_bucket=self.bucket,
            destination_key_prefix=MANIFEST_PREFIX,
            extract=True,
            prune=True,
            retain_on_delete=False,
        )

    def arn_for(self, key_pattern: str) -> str:
        """The ARN of the objects matching ``key_pattern`` in the data bucket."""
        return self.bucket.arn_for_objects(key_pattern)
