"""The pipeline's state machine definition (Amazon States Language, JSONPath), docs/design.md §1 and §6.

    ApplyDefaults -> PrepareDataset -> [ExtractFeatures] -> Tune -> PickBest -> Train -> QualityGate
                  -> RegisterModel (approved, rejected or pending) -> StartDeployment (approved) -> Notify

The model registry and the deployment are in :mod:`stacks.pipeline.registry` and :mod:`stacks.pipeline.deploy`
(the deployment state machine, which this one starts and waits for).

ChooseFeatureCache decides the channels: with ``featureCache`` (default) ExtractFeatures runs the frozen backbone
once over train+valid and UseCachedFeatures gives the trials one ``features`` channel (that job's model.tar.gz) and
the final job ``features`` + ``test``; without it UsePhotoChannels gives them the photos, as the classic recipe did.

Execution JSON, as the states fill it in:

- ``config``: the settings (ApplyDefaults' defaults merged with the execution input, so ``{}`` or the console's
  sample input runs with defaults and any setting can be overridden by its key);
- ``run``: this execution's unique names (``<prefix>-hpo-<12 hex>``: tuning job names stay within 32 characters)
  and the trials' static hyperparameters;
- ``capacity``: spot or on-demand stopping condition; ``dataset``: the copy map's result (where it wrote the
  results of each photo) and ``dataset.counts``: photos in the manifest, copied or already there, not copied;
- ``features``: the extraction job's Describe output (with the cache); ``channels``: the trials' and the final job's
  InputDataConfig;
- ``tuning`` / ``training``: Describe outputs of the ``.sync`` jobs; ``best``: the merged hyperparameters;
- ``gate``: the test accuracy; ``registration``: the model package and its approval; ``outcome``: the deployment
  (or the pending approval); ``error``: what failed and why.

Every task has a Catch that records ``$.error`` and goes to NotifyFailure, which publishes the cause to SNS and ends
in the Fail state PipelineFailed carrying the same error and cause (PipelineStepFailed for the reserved States.*
error names, which a Fail state may not raise; the original name then starts the cause).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bincount.cloud.settings import APPROVAL_MODES
from bincount.training.metrics import RULE_PREFIX, TEST_ACCURACY
from stacks.pipeline import registry, requests, scale
from stacks.pipeline.asl import (
    ANY_ERROR,
    DATA_BUCKET,
    ERROR_PATH,
    TOPIC_ARN,
    State,
    error_state,
    format_string,
    pass_state,
    retry,
    sagemaker_task,
    sdk_task,
    task,
)
from stacks.storage import MANIFEST_KEY, MAP_RUNS_PREFIX

# State names (the console shows them; tests and the README refer to them).
APPLY_DEFAULTS = "ApplyDefaults"
MERGE_SETTINGS = "MergeSettings"
VALIDATE_SETTINGS = "ValidateSettings"
INVALID_SETTINGS = "InvalidSettings"
NAME_JOBS = "NameJobs"
CHOOSE_CAPACITY = "ChooseCapacity"
USE_SPOT = "UseSpotCapacity"
USE_ON_DEMAND = "UseOnDemandCapacity"
PREPARE_DATASET = "PrepareDataset"
CHECK_COPIED = "CheckCopied"
ALREADY_COPIED = "AlreadyCopied"
IMAGE_PRESENT = "ImagePresent"
COPY_IMAGE = "CopyImage"
SOURCE_MISSING = "SourceImageMissing"
COUNT_COPIED = "CountCopiedImages"
CHOOSE_FEATURE_CACHE = "ChooseFeatureCache"
EXTRACT_FEATURES = "ExtractFeatures"
USE_CACHED_FEATURES = "UseCachedFeatures"
USE_PHOTO_CHANNELS = "UsePhotoChannels"
TUNE = "Tune"
CHECK_BEST = "CheckBestTrainingJob"
NO_BEST = "NoBestTrainingJob"
PICK_BEST = "PickBest"
TRAIN = "Train"
CHECK_METRICS = "CheckMetricsReported"
FIND_TEST_ACCURACY = "FindTestAccuracy"
CHECK_TEST_ACCURACY = "CheckTestAccuracyReported"
READ_TEST_ACCURACY = "ReadTestAccuracy"
NO_TEST_ACCURACY = "NoTestAccuracy"
FIND_TRAINING_ISSUES = "FindTrainingIssues"
CHECK_RULE_METRIC = "CheckRuleMetric"
RULE_FOUND_ISSUES = "RuleFoundIssues"
NOT_AN_ISSUE = "NotAnIssue"
QUALITY_GATE = "QualityGate"
GATE_REJECTED = "QualityGateRejected"
TRAINING_ISSUES_REJECTED = "TrainingIssuesRejected"
SUMMARIZE = "Summarize"
NOTIFY_SUCCESS = "NotifySuccess"
SUCCEEDED = "PipelineSucceeded"
NOTIFY_FAILURE = "NotifyFailure"
CHECK_ERROR_NAME = "CheckErrorName"
FAILED = "PipelineFailed"
STEP_FAILED = "PipelineStepFailed"

# Error names of the pipeline's own failures (the Fail state's Error; Catch keeps AWS's names).
INVALID_SETTINGS_ERROR = "InvalidSettings"
NO_BEST_ERROR = "NoBestTrainingJob"
NO_TEST_ACCURACY_ERROR = "TestAccuracyNotReported"
GATE_ERROR = "QualityGateFailed"
TRAINING_ISSUES_ERROR = "TrainingIssuesFound"
STEP_FAILED_ERROR = "PipelineStepFailed"
SOURCE_MISSING_ERROR = "SourceImageMissing"

# The happy path, in one place: a default execution (the subset, featureCache, spot, approval auto) passes these
# states in this order; every other state is a branch (capacity, the full dataset, no cache, sharding, manual
# approval) or a failure that ends in NotifyFailure. The deployment itself runs in the lifecycle state machine
# (stacks/pipeline/deploy.py) that StartDeployment starts. A test walks this path in the synthesized definition.
HAPPY_PATH: tuple[str, ...] = (
    APPLY_DEFAULTS,  # settings: defaults + input, validated, this run's names
    MERGE_SETTINGS,
    VALIDATE_SETTINGS,
    NAME_JOBS,
    CHOOSE_CAPACITY,
    USE_SPOT,
    scale.CHOOSE_DATASET,
    PREPARE_DATASET,  # copy the ABID photos into the data bucket (Distributed Map)
    COUNT_COPIED,
    CHOOSE_FEATURE_CACHE,
    EXTRACT_FEATURES,  # the frozen backbone once over train and valid
    USE_CACHED_FEATURES,
    TUNE,  # hyperparameter tuning job (.sync)
    CHECK_BEST,
    PICK_BEST,
    TRAIN,  # the final training job (.sync)
    CHECK_METRICS,
    FIND_TEST_ACCURACY,
    CHECK_TEST_ACCURACY,
    READ_TEST_ACCURACY,
    FIND_TRAINING_ISSUES,
    QUALITY_GATE,  # test accuracy >= accuracyFloor (and no training issues with stopOnTrainingIssues)
    registry.CHOOSE_APPROVAL,  # register the model package; approve it (approval: auto)
    registry.APPROVE_MODEL,
    registry.REGISTER_MODEL,
    registry.CHECK_REGISTRATION,
    registry.RECORD_APPROVAL,
    registry.CHECK_APPROVAL,
    registry.START_DEPLOYMENT,  # the deployment state machine: blue/green, rollback alarms, autoscaling
    SUMMARIZE,
    NOTIFY_SUCCESS,
    SUCCEEDED,
)

MAP_LABEL = "CopyImages"
TEST_ACCURACY_PATH = "$.gate.testAccuracies[0]"
# The rules (bincount.training.diagnostics) whose final rule:<Name> metric is 1, by name, from FindTrainingIssues.
TRAINING_ISSUES_PATH = "$.diagnostics.issues"
SOURCE_KEY_FIELD = "source_key"
DEST_KEY_FIELD = "dest_key"
# PrepareDataset goes on when at most this share of the photos could not be copied (gone from the public bucket, or
# still failing after the retries): 1% of the default 10,441 is 104 photos, a sliver of each class.
COPY_TOLERATED_FAILURE_PERCENT = 1.0
# What Step Functions' AWS SDK integration raises when CopyObject's source does not exist (S3 answers NoSuchKey).
S3_NO_SUCH_KEY = "S3.NoSuchKeyException"

# The ASL type check of each setting follows from its default's type in the settings table
# (bincount/cloud/settings.py, via PipelineSpec.defaults): no hand-kept list to fall out of step.
_TYPE_TESTS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("IsNumeric", (int, float)),
    ("IsString", (str,)),
    ("IsBoolean", (bool,)),
)


def type_test(key: str, default: Any) -> str:
    """The ASL Choice test (``IsNumeric``, ``IsString``, ``IsBoolean``) a setting's value must pass."""
    if isinstance(default, bool):  # before int: a bool is an int to Python, not to ASL
        return "IsBoolean"
    for test, types in _TYPE_TESTS:
        if isinstance(default, types):
            return test
    raise ValueError(f"setting {key}: no ASL type check for a {type(default).__name__} default")


_RANGES: tuple[tuple[str, str], ...] = (("lrMin", "lrMax"), ("epsMin", "epsMax"), ("weightDecayMin", "weightDecayMax"))


@dataclass(frozen=True)
class PipelineSpec:
    """What the definition needs that is fixed at synth time."""

    name_prefix: str
    endpoint_name: str
    region: str
    source_bucket: str
    defaults: dict[str, Any]
    copy_concurrency: int
    model_package_group: str
    debugger_rules_image: str | None = None  # SageMaker Debugger on the final job (setting sagemakerDebugger)

    @property
    def request_context(self) -> requests.RequestContext:
        return requests.RequestContext(region=self.region, debugger_rules_image=self.debugger_rules_image)


def _uuid_parts() -> tuple[str, str]:
    """JSONPaths of the two UUID parts (8 + 4 hex) that make the 12-character run id."""
    return "$.uuid[0]", "$.uuid[1]"


def settings_states(spec: PipelineSpec) -> dict[str, State]:
    """ApplyDefaults: defaults merged with the input, validated, plus this execution's names and capacity."""
    uuid = _uuid_parts()
    run_id = "{}{}"  # 8 + 4 hex digits of a fresh UUID: 12 characters (settings.RUN_ID_LENGTH)
    tests = {key: type_test(key, default) for key, default in spec.defaults.items()}
    wrong_type = [
        {"Not": {"Variable": f"$.config.{key}", test: True}}
        for wanted, _ in _TYPE_TESTS
        for key, test in tests.items()
        if test == wanted
    ]
    bad_range = [
        {"Variable": f"$.config.{low}", "NumericGreaterThanEqualsPath": f"$.config.{high}"} for low, high in _RANGES
    ] + [
        {"Variable": "$.config.tuningMaxParallelJobs", "NumericGreaterThanPath": "$.config.tuningMaxJobs"},
        {"Variable": "$.config.maxWaitSeconds", "NumericLessThanPath": "$.config.maxRuntimeSeconds"},
        {"Variable": "$.config.minInstances", "NumericGreaterThanPath": "$.config.maxInstances"},
        {"Variable": "$.config.minInstances", "NumericLessThan": 1},
        {"Variable": "$.config.dataCapturePercent", "NumericGreaterThan": 100},
        {"Variable": "$.config.dataCapturePercent", "NumericLessThan": 0},
        {
            "Not": {
                "Or": [{"Variable": "$.config.approval", "StringEquals": mode} for mode in APPROVAL_MODES],
            }
        },
        *scale.invalid_scale_rules(),
    ]
    prefix = spec.name_prefix
    return {
        APPLY_DEFAULTS: pass_state(MERGE_SETTINGS, parameters={"defaults": spec.defaults, "overrides.$": "$"}),
        MERGE_SETTINGS: pass_state(
            VALIDATE_SETTINGS,
            parameters={
                "config.$": "States.JsonMerge($.defaults, $.overrides, false)",
                "uuid.$": "States.StringSplit(States.UUID(), '-')",
            },
        ),
        VALIDATE_SETTINGS: {
            "Type": "Choice",
            "Choices": [
                {"Or": wrong_type, "Next": INVALID_SETTINGS},
                {"Or": bad_range, "Next": INVALID_SETTINGS},
            ],
            "Default": NAME_JOBS,
        },
        INVALID_SETTINGS: error_state(
            INVALID_SETTINGS_ERROR,
            "The execution input has an invalid setting: numbers must be numbers, useSpot, featureCache and "
            "stopOnTrainingIssues true or false, instance "
            "types and images strings, every ...Min below its ...Max, tuningMaxParallelJobs <= tuningMaxJobs and "
            "maxWaitSeconds >= maxRuntimeSeconds, 1 <= minInstances <= maxInstances, dataCapturePercent 0..100, "
            "approval auto or manual, dataset subset or full and the instance counts "
            f"from 1 to {scale.MAX_INSTANCE_COUNT}. Settings after applying defaults: {{}}",
            "States.JsonToString($.config)",
            next_state=NOTIFY_FAILURE,
        ),
        NAME_JOBS: pass_state(
            CHOOSE_CAPACITY,
            parameters={
                "config.$": "$.config",
                "run": {
                    "id.$": format_string(run_id, *uuid),
                    "tuningJobName.$": format_string(f"{prefix}-hpo-{run_id}", *uuid),
                    "featuresJobName.$": format_string(f"{prefix}-features-{run_id}", *uuid),
                    "trainingJobName.$": format_string(f"{prefix}-train-{run_id}", *uuid),
                    "deploymentName.$": format_string(f"{prefix}-deploy-{run_id}", *uuid),
                    "checkpointUri.$": format_string(f"s3://{DATA_BUCKET}/checkpoints/{prefix}-train-{run_id}/", *uuid),
                    # The trials' static hyperparameters, kept here because the tuning job's Describe output adds
                    # SageMaker's own (_tuning_objective_metric), which must not reach the final job.
                    "staticHyperParameters": requests.static_hyperparameters(spec.request_context),
                    "trainingOverrides": requests.final_job_overrides(),
                },
            },
        ),
        CHOOSE_CAPACITY: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.config.useSpot", "BooleanEquals": True, "Next": USE_SPOT}],
            "Default": USE_ON_DEMAND,
        },
        USE_SPOT: pass_state(
            scale.CHOOSE_DATASET,
            parameters={
                "spot": True,
                "stoppingCondition": {
                    "MaxRuntimeInSeconds.$": "$.config.maxRuntimeSeconds",
                    "MaxWaitTimeInSeconds.$": "$.config.maxWaitSeconds",
                },
            },
            result_path="$.capacity",
        ),
        USE_ON_DEMAND: pass_state(
            scale.CHOOSE_DATASET,
            parameters={"spot": False, "stoppingCondition": {"MaxRuntimeInSeconds.$": "$.config.maxRuntimeSeconds"}},
            result_path="$.capacity",
        ),
    }


def copy_image_states(spec: PipelineSpec) -> dict[str, State]:
    """One image of PrepareDataset: copy it from the public bucket unless a previous run already did.

    A photo gone from the public bucket is skipped at once: its item ends in SourceImageMissing, without retries.
    Other copy failures are retried; a photo still failing ends its item failed. Both count against
    :data:`COPY_TOLERATED_FAILURE_PERCENT` and in ``dataset.counts.notCopied``.
    """
    copy_image = sdk_task(
        "s3:copyObject",
        {
            "Bucket": DATA_BUCKET,
            "Key.$": f"$.{DEST_KEY_FIELD}",
            "CopySource.$": format_string(f"{spec.source_bucket}/{{}}", f"$.{SOURCE_KEY_FIELD}"),
            # No tags to copy, so no s3:GetObjectTagging on the public bucket.
            "TaggingDirective": "REPLACE",
        },
        result_path=None,
        # A missing source stays missing: no retries for it, then any other error.
        retriers=[retry((S3_NO_SUCH_KEY,), attempts=0), retry(ANY_ERROR, interval=1, attempts=5)],
        catch=None,
        next_state=None,
    )
    copy_image["Catch"] = [{"ErrorEquals": [S3_NO_SUCH_KEY], "ResultPath": ERROR_PATH, "Next": SOURCE_MISSING}]
    return {
        CHECK_COPIED: sdk_task(
            "s3:listObjectsV2",
            {"Bucket": DATA_BUCKET, "Prefix.$": f"$.{DEST_KEY_FIELD}", "MaxKeys": 1},
            result_selector={"KeyCount.$": "$.KeyCount"},
            result_path="$.existing",
            retriers=[retry(ANY_ERROR, interval=1, attempts=5)],
            catch=None,
            next_state=ALREADY_COPIED,
        ),
        ALREADY_COPIED: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.existing.KeyCount", "NumericGreaterThan": 0, "Next": IMAGE_PRESENT}],
            "Default": COPY_IMAGE,
        },
        IMAGE_PRESENT: {"Type": "Succeed"},
        COPY_IMAGE: copy_image,
        SOURCE_MISSING: {
            "Type": "Fail",
            "Error": SOURCE_MISSING_ERROR,
            "CausePath": format_string(
                f"{spec.source_bucket}/{{}} no longer exists: skipped ({{}})",
                f"$.{SOURCE_KEY_FIELD}",
                f"{ERROR_PATH}.Cause",
            ),
        },
    }


def prepare_dataset_states(spec: PipelineSpec) -> dict[str, State]:
    """PrepareDataset: a Distributed Map over the manifest, child executions STANDARD, results written to S3, a few
    photos not copied tolerated; then CountCopiedImages reads the map run's counts."""
    return {
        PREPARE_DATASET: prepare_dataset_state(spec),
        COUNT_COPIED: sdk_task(
            "sfn:describeMapRun",
            {"MapRunArn.$": "$.dataset.MapRunArn"},
            result_selector={
                "images.$": "$.ItemCounts.Total",
                "copied.$": "$.ItemCounts.Succeeded",
                "notCopied.$": "$.ItemCounts.Failed",
            },
            result_path="$.dataset.counts",
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=NOTIFY_FAILURE,
            next_state=CHOOSE_FEATURE_CACHE,
        ),
    }


def prepare_dataset_state(spec: PipelineSpec) -> State:
    """The Distributed Map over the manifest."""
    return {
        "Type": "Map",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:getObject",
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": DATA_BUCKET, "Key": MANIFEST_KEY},
        },
        "ItemSelector": {
            f"{SOURCE_KEY_FIELD}.$": f"$$.Map.Item.Value.{SOURCE_KEY_FIELD}",
            f"{DEST_KEY_FIELD}.$": f"$$.Map.Item.Value.{DEST_KEY_FIELD}",
        },
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": CHECK_COPIED,
            "States": copy_image_states(spec),
        },
        "MaxConcurrency": spec.copy_concurrency,
        "ToleratedFailurePercentage": COPY_TOLERATED_FAILURE_PERCENT,
        "Label": MAP_LABEL,
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": DATA_BUCKET, "Prefix": MAP_RUNS_PREFIX.rstrip("/")},
        },
        "ResultPath": "$.dataset",
        "Retry": [retry(("States.ItemReaderFailed", "States.ResultWriterFailed"), interval=10, attempts=2)],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": ERROR_PATH, "Next": NOTIFY_FAILURE}],
        "Next": COUNT_COPIED,
    }


def feature_cache_states(spec: PipelineSpec) -> dict[str, State]:
    """ChooseFeatureCache: ExtractFeatures then the cached-feature channels, or straight to the photo channels."""
    return {
        CHOOSE_FEATURE_CACHE: {
            "Type": "Choice",
            "Choices": [
                *scale.feature_cache_rules(),
                {"Variable": "$.config.featureCache", "BooleanEquals": True, "Next": EXTRACT_FEATURES},
            ],
            "Default": USE_PHOTO_CHANNELS,
        },
        **scale.feature_states(tune=TUNE, failure=NOTIFY_FAILURE, ctx=spec.request_context),
        EXTRACT_FEATURES: sagemaker_task(
            "createTrainingJob.sync",
            requests.feature_extraction_job(spec.request_context),
            result_path="$.features",
            catch=NOTIFY_FAILURE,
            next_state=USE_CACHED_FEATURES,
        ),
        USE_CACHED_FEATURES: pass_state(TUNE, parameters=requests.cached_feature_channels(), result_path="$.channels"),
        USE_PHOTO_CHANNELS: pass_state(TUNE, parameters=requests.photo_channels(), result_path="$.channels"),
    }


def training_states(spec: PipelineSpec) -> dict[str, State]:
    """Tune, PickBest (static + tuned hyperparameters) and Train."""
    ctx = spec.request_context
    return {
        TUNE: sagemaker_task(
            "createHyperParameterTuningJob.sync",
            requests.tuning_job(ctx),
            result_path="$.tuning",
            catch=NOTIFY_FAILURE,
            next_state=CHECK_BEST,
        ),
        CHECK_BEST: {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.tuning.BestTrainingJob.TunedHyperParameters", "IsPresent": True, "Next": PICK_BEST}
            ],
            "Default": NO_BEST,
        },
        NO_BEST: error_state(
            NO_BEST_ERROR,
            "Tuning job {} finished without a best training job (did every trial fail to report valid:loss?).",
            "$.run.tuningJobName",
            next_state=NOTIFY_FAILURE,
        ),
        PICK_BEST: pass_state(
            TRAIN,
            parameters={
                "hyperParameters.$": (
                    f"States.JsonMerge(States.JsonMerge({requests.STATIC_HYPERPARAMETERS_PATH}, "
                    "$.tuning.BestTrainingJob.TunedHyperParameters, false), $.run.trainingOverrides, false)"
                ),
                "tunedHyperParameters.$": "$.tuning.BestTrainingJob.TunedHyperParameters",
                "bestTrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName",
            },
            result_path="$.best",
        ),
        TRAIN: sagemaker_task(
            "createTrainingJob.sync",
            requests.training_job(ctx),
            result_path="$.training",
            catch=NOTIFY_FAILURE,
            next_state=CHECK_METRICS,
        ),
    }


def training_issues_state() -> State:
    """FindTrainingIssues: the names of the rules whose final ``rule:<Name>`` metric is 1 (FinalMetricDataList).

    An inline Map over the final metrics: a rule metric at 1 yields ``{"rule": "<Name>"}``, anything else ``{}``;
    ``$[*].rule`` then keeps the names (an empty list when no rule found an issue).
    """
    return {
        "Type": "Map",
        "ItemsPath": "$.training.FinalMetricDataList",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": CHECK_RULE_METRIC,
            "States": {
                CHECK_RULE_METRIC: {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "And": [
                                {"Variable": "$.MetricName", "StringMatches": f"{RULE_PREFIX}*"},
                                {"Variable": "$.Value", "NumericEquals": 1},
                            ],
                            "Next": RULE_FOUND_ISSUES,
                        }
                    ],
                    "Default": NOT_AN_ISSUE,
                },
                RULE_FOUND_ISSUES: {
                    "Type": "Pass",
                    "Parameters": {"rule.$": "States.ArrayGetItem(States.StringSplit($.MetricName, ':'), 1)"},
                    "End": True,
                },
                NOT_AN_ISSUE: {"Type": "Pass", "Result": {}, "End": True},
            },
        },
        "ResultSelector": {"issues.$": "$[*].rule"},
        "ResultPath": "$.diagnostics",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": ERROR_PATH, "Next": NOTIFY_FAILURE}],
        "Next": QUALITY_GATE,
    }


def gate_states() -> dict[str, State]:
    """QualityGate: the final job's test accuracy (FinalMetricDataList) against the accuracy floor, and with
    ``stopOnTrainingIssues`` no rule that found an issue."""
    metrics = "$.training.FinalMetricDataList"
    archive, archive_job = requests.training_output_archive()
    return {
        CHECK_METRICS: {
            "Type": "Choice",
            "Choices": [{"Variable": metrics, "IsPresent": True, "Next": FIND_TEST_ACCURACY}],
            "Default": NO_TEST_ACCURACY,
        },
        FIND_TEST_ACCURACY: pass_state(
            CHECK_TEST_ACCURACY,
            parameters={"reported.$": f"States.ArrayContains({metrics}[*].MetricName, '{TEST_ACCURACY}')"},
            result_path="$.gate",
        ),
        CHECK_TEST_ACCURACY: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.gate.reported", "BooleanEquals": True, "Next": READ_TEST_ACCURACY}],
            "Default": NO_TEST_ACCURACY,
        },
        READ_TEST_ACCURACY: pass_state(
            FIND_TRAINING_ISSUES,
            parameters={
                # A filter in a plain path (not inside an intrinsic): one value, as CheckTestAccuracyReported made sure.
                "testAccuracies.$": f"{metrics}[?(@.MetricName == '{TEST_ACCURACY}')].Value",
                "accuracyFloor.$": "$.config.accuracyFloor",
            },
            result_path="$.gate",
        ),
        FIND_TRAINING_ISSUES: training_issues_state(),
        QUALITY_GATE: {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.config.stopOnTrainingIssues", "BooleanEquals": True},
                        {"Variable": f"{TRAINING_ISSUES_PATH}[0]", "IsPresent": True},
                    ],
                    "Next": TRAINING_ISSUES_REJECTED,
                },
                {
                    "Variable": TEST_ACCURACY_PATH,
                    "NumericGreaterThanEqualsPath": "$.gate.accuracyFloor",
                    "Next": registry.CHOOSE_APPROVAL,
                },
            ],
            "Default": GATE_REJECTED,
        },
        TRAINING_ISSUES_REJECTED: error_state(
            TRAINING_ISSUES_ERROR,
            "Training job {} found issues by the rules {} and stopOnTrainingIssues is true: the model was not "
            f"deployed and the current endpoint keeps serving. Why: report.html in {archive}",
            "$.run.trainingJobName",
            f"States.JsonToString({TRAINING_ISSUES_PATH})",
            archive_job,
            next_state=registry.REJECT_MODEL,
        ),
        NO_TEST_ACCURACY: error_state(
            NO_TEST_ACCURACY_ERROR,
            f"Training job {{}} reported no {TEST_ACCURACY} metric, so the quality gate cannot pass; nothing was "
            "deployed and the current endpoint keeps serving.",
            "$.run.trainingJobName",
            next_state=registry.REJECT_MODEL_WITHOUT_ACCURACY,
        ),
        GATE_REJECTED: error_state(
            GATE_ERROR,
            "Test accuracy {} of training job {} is below the accuracy floor {}: the model was not deployed and the "
            "current endpoint keeps serving.",
            TEST_ACCURACY_PATH,
            "$.run.trainingJobName",
            "$.gate.accuracyFloor",
            next_state=registry.REJECT_MODEL,
        ),
    }


def _console_link(spec: PipelineSpec) -> str:
    return format_string(
        f"https://{spec.region}.console.aws.amazon.com/states/home?region={spec.region}#/v2/executions/details/{{}}",
        "$$.Execution.Id",
    )


def notify_states(spec: PipelineSpec) -> dict[str, State]:
    """Notify: SNS on success (then end with the summary) and on any failure (then Fail with the cause)."""
    return {
        SUMMARIZE: pass_state(
            NOTIFY_SUCCESS,
            parameters={
                "status.$": "$.outcome.status",
                "endpointName": spec.endpoint_name,
                "modelPackageArn.$": "$.registration.package.arn",
                "approval.$": "$.config.approval",
                "outcome.$": "$.outcome",
                "modelData.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                "tuningJobName.$": "$.run.tuningJobName",
                "trainingJobName.$": "$.run.trainingJobName",
                "featureCache.$": "$.config.featureCache",
                # Photos PrepareDataset could not copy (each listed with its error in the map run's results).
                "imagesNotCopied.$": "$.dataset.counts.notCopied",
                "datasetResults.$": format_string(
                    "s3://{}/{}", "$.dataset.ResultWriterDetails.Bucket", "$.dataset.ResultWriterDetails.Key"
                ),
                "hyperParameters.$": "$.best.tunedHyperParameters",
                "testAccuracy.$": TEST_ACCURACY_PATH,
                "accuracyFloor.$": "$.gate.accuracyFloor",
                "trainingIssues.$": TRAINING_ISSUES_PATH,
                "trainingReport": {
                    "archive.$": format_string(*requests.training_output_archive()),
                    "files": ["report.html", "diagnostics.json"],
                },
                "execution.$": "$$.Execution.Id",
                # What every resource this execution created is tagged with (requests.RUN_TAG).
                "runId.$": requests.RUN_ID_PATH,
                "console.$": _console_link(spec),
            },
            result_path="$.summary",
        ),
        NOTIFY_SUCCESS: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject.$": format_string(f"{spec.name_prefix}: {{}}", "$.outcome.subject"),
                "Message.$": "$.summary",
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            catch=NOTIFY_FAILURE,
            next_state=SUCCEEDED,
        ),
        # The execution's output is the summary. A Pass state ends with it: the States Language schemas that
        # cfn-lint and other tools check allow no OutputPath on a Succeed state.
        SUCCEEDED: {"Type": "Pass", "OutputPath": "$.summary", "End": True},
        NOTIFY_FAILURE: task(
            "arn:aws:states:::sns:publish",
            {
                "TopicArn": TOPIC_ARN,
                "Subject": f"{spec.name_prefix}: pipeline failed",
                "Message": {
                    "status": "FAILED",
                    "error.$": f"{ERROR_PATH}.Error",
                    "cause.$": f"{ERROR_PATH}.Cause",
                    "execution.$": "$$.Execution.Id",
                    "console.$": _console_link(spec),
                },
            },
            result_path=None,
            retriers=[retry(ANY_ERROR, interval=2, attempts=3)],
            # If even the failure notice fails, still end with the original error.
            catch=CHECK_ERROR_NAME,
            catch_result_path="$.notifyError",
            next_state=CHECK_ERROR_NAME,
        ),
        # A Fail state may not raise the reserved States.* names (States.TaskFailed, States.Timeout...): those end
        # as PipelineStepFailed with the original name at the start of the cause.
        CHECK_ERROR_NAME: {
            "Type": "Choice",
            "Choices": [{"Variable": f"{ERROR_PATH}.Error", "StringMatches": "States.*", "Next": STEP_FAILED}],
            "Default": FAILED,
        },
        FAILED: {"Type": "Fail", "ErrorPath": f"{ERROR_PATH}.Error", "CausePath": f"{ERROR_PATH}.Cause"},
        STEP_FAILED: {
            "Type": "Fail",
            "Error": STEP_FAILED_ERROR,
            "CausePath": f"States.Format('{{}}: {{}}', {ERROR_PATH}.Error, {ERROR_PATH}.Cause)",
        },
    }


def pipeline_definition(spec: PipelineSpec) -> dict[str, Any]:
    """The whole state machine definition, with ``${...}`` placeholders for DefinitionSubstitutions."""
    states: dict[str, State] = {}
    for part in (
        settings_states(spec),
        scale.dataset_states(
            prepare_subset=PREPARE_DATASET,
            after=CHOOSE_FEATURE_CACHE,
            failure=NOTIFY_FAILURE,
            ctx=spec.request_context,
            name_prefix=spec.name_prefix,
        ),
        prepare_dataset_states(spec),
        feature_cache_states(spec),
        training_states(spec),
        gate_states(),
        registry.registry_states(
            group=spec.model_package_group,
            ctx=spec.request_context,
            test_accuracy_path=TEST_ACCURACY_PATH,
            notify_failure=NOTIFY_FAILURE,
            summarize=SUMMARIZE,
        ),
        notify_states(spec),
    ):
        overlap = states.keys() & part.keys()
        if overlap:
            raise ValueError(f"state names used twice: {sorted(overlap)}")
        states.update(part)
    return {
        "Comment": (
            f"{spec.name_prefix}: copy the dataset, extract backbone features (featureCache), tune, train, gate on "
            f"test accuracy (and training issues with stopOnTrainingIssues), register the model in "
            f"{spec.model_package_group} and deploy it to endpoint {spec.endpoint_name} once approved. Start with {{}} "
            "or override any setting by its key, e.g. "
            '{"tuningMaxJobs": 2, "accuracyFloor": 0.35}.'
        ),
        "StartAt": APPLY_DEFAULTS,
        "States": states,
    }
