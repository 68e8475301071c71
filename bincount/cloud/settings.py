"""The user settings of the CDK app: typed, validated, documented, read once from the CDK context.

Every setting is a field of :class:`Settings` whose metadata names its context key (the name used in ``cdk.json``
and with ``npx cdk deploy -c key=value``) and documents it. :func:`load_settings` reads them all, parses values that
come as strings from the command line, and fails fast with :class:`SettingsError` naming the key.

Settings marked ``runtime`` are also the defaults of the state machine's ApplyDefaults state: an execution input may
override any of them (same key, same type) without a redeploy. The others shape resources (names, IAM, assets) and
change only with a deploy.

Region and account are not settings: they come from the environment the CDK CLI sets (``CDK_DEFAULT_REGION``,
``CDK_DEFAULT_ACCOUNT``; ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` also count for the region), with ``us-east-1``
when none is set, so that ``npx cdk synth`` works offline without credentials.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from bincount import versions
from bincount.training.tuning import DEFAULT_RANGES

DEFAULT_REGION = "us-east-1"
REGION_VARIABLES: tuple[str, ...] = ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
ACCOUNT_VARIABLE = "CDK_DEFAULT_ACCOUNT"

# Job names are "<prefix>-hpo-<12 hex>" and tuning job names may have at most 32 characters.
RUN_ID_LENGTH = 12
MAX_TUNING_JOB_NAME = 32
MAX_NAME_PREFIX = MAX_TUNING_JOB_NAME - len("-hpo-") - RUN_ID_LENGTH

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_PY_VERSION = re.compile(r"^py3\d+$")
# Training containers that ship smdebug (SageMaker Debugger's hook): PyTorch 2.0 and 2.1 (py310).
SMDEBUG_FRAMEWORK_VERSIONS: tuple[str, ...] = ("2.0", "2.1")
# The retention periods CloudWatch Logs offers, in days.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the setting and says what is allowed."""


# --- parsers: raw context value (JSON from cdk.json, or a string from -c key=value) -> typed value -------------


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("expected a string")
    return raw.strip()


def _integer(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("expected a whole number, not true/false")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d+\s*", raw):
        return int(raw)
    raise ValueError("expected a whole number")


def _number(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("expected a number, not true/false")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"true", "false"}:
        return raw.strip().lower() == "true"
    raise ValueError("expected true or false")


def _optional_integer(raw: Any) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "null", "none", "all"}):
        return None
    return _integer(raw)


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = _text(raw)
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {what}")
        return value

    return parse


def _at_least(minimum: float, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_bounded(raw: Any) -> Any:
        value = parse(raw)
        if value is not None and value < minimum:
            raise ValueError(f"must be at least {minimum:g}")
        return value

    return parse_bounded


def _between(low: float, high: float, parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_bounded(raw: Any) -> Any:
        value = parse(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse_bounded


def _positive(raw: Any) -> float:
    value = _number(raw)
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _email_or_empty(raw: Any) -> str:
    value = _text(raw)
    if value and not _EMAIL.fullmatch(value):
        raise ValueError("expected an e-mail address, or an empty string for no subscription")
    return value


def _log_retention(raw: Any) -> int:
    value = _integer(raw)
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"must be one of CloudWatch Logs' retention periods: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    return value


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _bucket_list(raw: Any) -> str:
    """Comma-separated S3 bucket names, normalised (no spaces, no empty names)."""
    names = [name.strip() for name in _text(raw).split(",") if name.strip()]
    bad = [name for name in names if not _BUCKET_NAME.match(name)]
    if bad:
        raise ValueError(f"not S3 bucket names: {', '.join(bad)}")
    return ",".join(names)


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = _text(raw)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


SERVING_IMAGES: tuple[str, ...] = ("project", "prebuilt")
DATASETS: tuple[str, ...] = ("subset", "full")
APPROVAL_MODES: tuple[str, ...] = ("auto", "manual")
_INSTANCE = _matching(_INSTANCE_TYPE, "a SageMaker instance type such as ml.m5.xlarge")


_RANGES = {r.name: r for r in DEFAULT_RANGES}


def _range_doc(name: str, end: str) -> str:
    label = {"lr": "Learning rate", "eps": "AdamW epsilon", "weight-decay": "Weight decay"}[name]
    return f"{label} range, {end} end ({_RANGES[name].scaling.lower()} scaling, as the local twin searches)."


def setting(key: str, default: Any, parse: Callable[[Any], Any], doc: str, *, runtime: bool = False) -> Any:
    """A :class:`Settings` field: its context key, default, parser, documentation and whether executions override it."""
    return field(default=default, metadata={"key": key, "parse": parse, "doc": doc, "runtime": runtime})


@dataclass(frozen=True)
class Settings:
    """Every user setting of the app, typed. Build it with :func:`load_settings`."""

    region: str
    account: str | None

    # --- names --------------------------------------------------------------------------------------------------
    stack_name: str = setting(
        "stackName", "Bincount", _matching(_STACK_NAME, "a CloudFormation stack name"), "CloudFormation stack name."
    )
    name_prefix: str = setting(
        "namePrefix",
        "bincount",
        _matching(_NAME_PREFIX, "lower-case letters, digits and single hyphens"),
        f"Prefix of every SageMaker name (jobs, models, endpoint) and of the state machine; at most "
        f"{MAX_NAME_PREFIX} characters so tuning job names stay within {MAX_TUNING_JOB_NAME}.",
    )

    # --- instances and containers -------------------------------------------------------------------------------
    tuning_instance_type: str = setting(
        "tuningInstanceType",
        "ml.m5.large",
        _INSTANCE,
        "Instance type of each tuning trial. With featureCache a trial trains only the head on cached features, so "
        "a small CPU instance is enough; without it every trial runs the backbone (ml.m5.2xlarge or a GPU type).",
        runtime=True,
    )
    training_instance_type: str = setting(
        "trainingInstanceType",
        "ml.m5.xlarge",
        _INSTANCE,
        "Instance type of the feature-extraction job and of the final training job.",
        runtime=True,
    )
    endpoint_instance_type: str = setting(
        "endpointInstanceType", "ml.t2.medium", _INSTANCE, "Instance type of the real-time endpoint.", runtime=True
    )
    framework_version: str = setting(
        "frameworkVersion",
        versions.TRAINING_FRAMEWORK,
        _matching(_VERSION, "a version such as 2.10"),
        f"PyTorch version of AWS's training container (tuning, feature extraction, training); "
        f"{versions.TRAINING_FRAMEWORK} is the one in AWS's patch support (to {versions.TRAINING_END_OF_PATCH}) and "
        f"the torch the tests run.",
    )
    py_version: str = setting(
        "pyVersion",
        versions.TRAINING_PY,
        _matching(_PY_VERSION, "a Python tag such as py313"),
        "Python of the training container.",
    )
    serving_image: str = setting(
        "servingImage",
        "project",
        _one_of(SERVING_IMAGES),
        "The endpoint's image: 'project' builds inference/Dockerfile at deploy (needs Docker or Finch; "
        f"torch {versions.TORCH}, the tests' versions); 'prebuilt' uses AWS's PyTorch inference container "
        f"(inferenceFrameworkVersion), for users without Docker.",
    )
    sagemaker_debugger: bool = setting(
        "sagemakerDebugger",
        False,
        _boolean,
        "Add SageMaker Debugger's hook, rules and Profiler to the final training job (accounts that still have "
        "Debugger, training containers with smdebug: frameworkVersion 2.0 or 2.1). The training code's own rules "
        "and profile (diagnostics.json, report.html) run either way.",
    )
    inference_framework_version: str = setting(
        "inferenceFrameworkVersion",
        versions.PREBUILT_INFERENCE_FRAMEWORK,
        _matching(_VERSION, "a version such as 2.6"),
        f"With servingImage 'prebuilt': PyTorch version of AWS's CPU inference container ("
        f"{versions.PREBUILT_INFERENCE_FRAMEWORK} is the last one; out of patch since "
        f"{versions.PREBUILT_INFERENCE_END_OF_PATCH}).",
    )
    inference_py_version: str = setting(
        "inferencePyVersion",
        versions.PREBUILT_INFERENCE_PY,
        _matching(_PY_VERSION, "a Python tag such as py312"),
        "With servingImage 'prebuilt': Python of AWS's inference container.",
    )

    # --- tuning and training ------------------------------------------------------------------------------------
    tuning_max_jobs: int = setting(
        "tuningMaxJobs", 4, _between(1, 500, _integer), "Training jobs the tuning job runs in all.", runtime=True
    )
    tuning_max_parallel_jobs: int = setting(
        "tuningMaxParallelJobs", 2, _between(1, 100, _integer), "Tuning trials running at the same time.", runtime=True
    )
    epochs: int = setting(
        "epochs", 4, _between(1, 1000, _integer), "Epochs of every trial and of the final job.", runtime=True
    )
    batch_size: int = setting(
        "batchSize", 32, _between(1, 4096, _integer), "Images per training batch (per process).", runtime=True
    )
    lr_min: float = setting("lrMin", _RANGES["lr"].min_value, _positive, _range_doc("lr", "lower"), runtime=True)
    lr_max: float = setting("lrMax", _RANGES["lr"].max_value, _positive, _range_doc("lr", "upper"), runtime=True)
    eps_min: float = setting("epsMin", _RANGES["eps"].min_value, _positive, _range_doc("eps", "lower"), runtime=True)
    eps_max: float = setting("epsMax", _RANGES["eps"].max_value, _positive, _range_doc("eps", "upper"), runtime=True)
    weight_decay_min: float = setting(
        "weightDecayMin",
        _RANGES["weight-decay"].min_value,
        _positive,
        _range_doc("weight-decay", "lower"),
        runtime=True,
    )
    weight_decay_max: float = setting(
        "weightDecayMax",
        _RANGES["weight-decay"].max_value,
        _positive,
        _range_doc("weight-decay", "upper"),
        runtime=True,
    )
    feature_cache: bool = setting(
        "featureCache",
        True,
        _boolean,
        "Run the frozen backbone once (ExtractFeatures) and train every trial and the final head on the cached "
        "features; false fine-tunes on the photos in every job (needed when layers are unfrozen).",
        runtime=True,
    )
    use_spot: bool = setting(
        "useSpot",
        True,
        _boolean,
        "Managed spot training for trials and the final job (checkpoints resume it).",
        runtime=True,
    )
    max_runtime_seconds: int = setting(
        "maxRuntimeSeconds",
        7200,
        _between(60, 432000, _integer),
        "Longest a trial or the final job may train.",
        runtime=True,
    )
    max_wait_seconds: int = setting(
        "maxWaitSeconds",
        14400,
        _between(60, 432000, _integer),
        "Longest a spot job may take including waiting for capacity (>= maxRuntimeSeconds).",
        runtime=True,
    )

    # --- quality gate and deployment ----------------------------------------------------------------------------
    accuracy_floor: float = setting(
        "accuracyFloor",
        0.3,
        _between(0, 1, _number),
        "Deploy only when the test accuracy is at least this (0.3 beats always answering the most common count, "
        "0.255).",
        runtime=True,
    )
    stop_on_training_issues: bool = setting(
        "stopOnTrainingIssues",
        False,
        _boolean,
        "Make the quality gate refuse a model whose training rules found issues (rule:<Name>=1), naming the rules.",
        runtime=True,
    )
    endpoint_poll_seconds: int = setting(
        "endpointPollSeconds",
        60,
        _between(0, 3600, _integer),
        "Seconds between DescribeEndpoint polls while deploying.",
        runtime=True,
    )
    endpoint_max_polls: int = setting(
        "endpointMaxPolls",
        90,
        _between(1, 10000, _integer),
        "Polls before the deployment counts as timed out.",
        runtime=True,
    )

    # --- model lifecycle (docs/design.md §10) -----------------------------------------------------------------------
    approval: str = setting(
        "approval",
        "auto",
        _one_of(APPROVAL_MODES),
        "Every trained model is registered in the stack's model package group. 'auto' approves it when the quality "
        "gate passes (rejects it, with the cause, when not) and deploys it; 'manual' registers it "
        "PendingManualApproval and deploys it once a person approves it.",
        runtime=True,
    )
    min_instances: int = setting(
        "minInstances",
        1,
        _between(1, 100, _integer),
        "Endpoint instances a deployment starts with, and the autoscaling floor.",
        runtime=True,
    )
    max_instances: int = setting(
        "maxInstances",
        1,
        _between(1, 100, _integer),
        "Above minInstances: target-tracking autoscaling on invocations per instance up to this many instances; "
        "the API's usage plan scales with it.",
        runtime=True,
    )
    data_capture_percent: int = setting(
        "dataCapturePercent",
        0,
        _between(0, 100, _integer),
        "Share of requests (and responses) the endpoint captures to the data bucket under capture/ (0 = off: "
        "photos are customers' data, opt in).",
        runtime=True,
    )
    bake_minutes: int = setting(
        "bakeMinutes",
        10,
        _between(0, 60, _integer),
        "Blue/green endpoint updates keep the old fleet this long under the rollback alarms before finishing "
        "(fixed at deploy: Step Functions cannot multiply minutes into the request's seconds).",
    )
    invocations_per_instance: int = setting(
        "invocationsPerInstance",
        120,
        _between(1, 100000, _integer),
        "Autoscaling target: invocations per instance per minute (about 2 per second: what one ml.t2.medium serves).",
        runtime=True,
    )

    # --- dataset ------------------------------------------------------------------------------------------------
    max_images_per_count: int | None = setting(
        "maxImagesPerCount",
        None,
        _at_least(1, _optional_integer),
        "Dataset subset: at most this many images per object count (a stratified sample of file_list.json); "
        "null uses all 10,441.",
    )
    dataset: str = setting(
        "dataset",
        "subset",
        _one_of(DATASETS),
        "'subset': file_list.json's 10,441 images (maxImagesPerCount applies); 'full': every ABID image with 1..5 "
        "objects, its manifest built in the cloud from the public metadata once (BuildFullManifest) and reused.",
        runtime=True,
    )
    extraction_instance_count: int = setting(
        "extractionInstanceCount",
        1,
        _between(1, 100, _integer),
        "Instances of the feature-extraction job, each extracting its own shard of the photos (ShardedByS3Key).",
        runtime=True,
    )
    training_instance_count: int = setting(
        "trainingInstanceCount",
        1,
        _between(1, 100, _integer),
        "Instances of the final training job (data parallel), and of every trial too when featureCache is false.",
        runtime=True,
    )
    copy_concurrency: int = setting(
        "copyConcurrency",
        100,
        _between(1, 1000, _integer),
        "Images PrepareDataset copies at the same time (Distributed Map concurrency).",
    )

    # --- serving, notifications, logs ---------------------------------------------------------------------------
    notification_email: str = setting(
        "notificationEmail",
        "",
        _email_or_empty,
        "E-mail subscribed to the pipeline's notifications (confirm the e-mail AWS sends); empty for none.",
    )
    api_rate_limit: float = setting(
        "apiRateLimit",
        5.0,
        _between(0.1, 10000, _number),
        "API requests per second (steady) per endpoint instance, sized for one ml.t2.medium; the API allows it "
        "times maxInstances.",
    )
    api_burst_limit: int = setting(
        "apiBurstLimit",
        10,
        _between(1, 5000, _integer),
        "API requests allowed in a burst above the steady rate, per endpoint instance (times maxInstances).",
    )
    api_daily_quota: int = setting(
        "apiDailyQuota",
        10000,
        _between(1, 10_000_000, _integer),
        "API requests per day for the API key, per endpoint instance (times maxInstances).",
    )
    log_retention_days: int = setting("logRetentionDays", 30, _log_retention, "Retention of the app's log groups.")
    batch_instance_type: str = setting(
        "batchInstanceType", "ml.m5.large", _INSTANCE, "Instance type of the Batch state machine's transform job."
    )
    batch_input_buckets: str = setting(
        "batchInputBuckets",
        "",
        _bucket_list,
        "Buckets besides the data bucket the Batch state machine may read photos and expected CSVs from "
        "(comma-separated names): deploying grants its transform job and Lambda read access to them.",
    )

    def __post_init__(self) -> None:
        if len(self.name_prefix) > MAX_NAME_PREFIX:
            raise SettingsError(f"setting 'namePrefix': at most {MAX_NAME_PREFIX} characters, got {self.name_prefix!r}")
        for low, high in (("lrMin", "lrMax"), ("epsMin", "epsMax"), ("weightDecayMin", "weightDecayMax")):
            if self.value(low) >= self.value(high):
                raise SettingsError(
                    f"setting '{low}' must be below '{high}', got {self.value(low)} >= {self.value(high)}"
                )
        if self.tuning_max_parallel_jobs > self.tuning_max_jobs:
            raise SettingsError(
                f"setting 'tuningMaxParallelJobs' ({self.tuning_max_parallel_jobs}) must not exceed "
                f"'tuningMaxJobs' ({self.tuning_max_jobs})"
            )
        if (
            self.sagemaker_debugger
            and ".".join(self.framework_version.split(".")[:2]) not in SMDEBUG_FRAMEWORK_VERSIONS
        ):
            raise SettingsError(
                f"setting 'sagemakerDebugger' needs a training container with smdebug, but 'frameworkVersion' is "
                f"{self.framework_version!r}: set frameworkVersion to one of {', '.join(SMDEBUG_FRAMEWORK_VERSIONS)} "
                "(with pyVersion py310), or sagemakerDebugger to false (the training code's own rules run anyway)"
            )
        if self.min_instances > self.max_instances:
            raise SettingsError(
                f"setting 'minInstances' ({self.min_instances}) must not exceed 'maxInstances' ({self.max_instances})"
            )
        if self.max_wait_seconds < self.max_runtime_seconds:
            raise SettingsError(
                f"setting 'maxWaitSeconds' ({self.max_wait_seconds}) must be at least "
                f"'maxRuntimeSeconds' ({self.max_runtime_seconds})"
            )

    def value(self, key: str) -> Any:
        """The value of the setting with context key ``key``."""
        return getattr(self, _ATTRIBUTE_BY_KEY[key])

    def runtime_values(self) -> dict[str, Any]:
        """The settings an execution input may override, by context key (the ApplyDefaults defaults)."""
        return {spec.key: self.value(spec.key) for spec in SETTING_SPECS if spec.runtime}

    # --- derived names ------------------------------------------------------------------------------------------
    @property
    def endpoint_name(self) -> str:
        """The one endpoint the pipeline deploys to and the API serves from."""
        return f"{self.name_prefix}-endpoint"

    @property
    def state_machine_name(self) -> str:
        return f"{self.name_prefix}-pipeline"

    @property
    def deploy_state_machine_name(self) -> str:
        """The deployment state machine (registered, approved model package -> endpoint)."""
        return f"{self.name_prefix}-deploy"

    @property
    def model_package_group_name(self) -> str:
        """The model registry's group every trained model is registered in."""
        return f"{self.name_prefix}-models"

    @property
    def batch_state_machine_name(self) -> str:
        return f"{self.name_prefix}-batch"

    @property
    def batch_buckets(self) -> tuple[str, ...]:
        """The buckets of ``batchInputBuckets``, besides the data bucket."""
        return tuple(name for name in self.batch_input_buckets.split(",") if name)


@dataclass(frozen=True)
class SettingSpec:
    """How one setting is read: its key, default, parser and documentation."""

    key: str
    attribute: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str
    runtime: bool


SETTING_SPECS: tuple[SettingSpec, ...] = tuple(
    SettingSpec(
        key=f.metadata["key"],
        attribute=f.name,
        default=f.default,
        parse=f.metadata["parse"],
        doc=f.metadata["doc"],
        runtime=f.metadata["runtime"],
    )
    for f in fields(Settings)
    if "key" in f.metadata and f.default is not MISSING
)
_ATTRIBUTE_BY_KEY = {spec.key: spec.attribute for spec in SETTING_SPECS}


def default_context() -> dict[str, Any]:
    """Every setting's default by key: what ``cdk.json`` documents."""
    return {spec.key: spec.default for spec in SETTING_SPECS}


def parse_setting(spec: SettingSpec, raw: Any) -> Any:
    """Parse one raw context value; a bad value raises :class:`SettingsError` naming the key."""
    if raw is None:
        return spec.default
    try:
        return spec.parse(raw)
    except ValueError as e:
        raise SettingsError(
            f"setting '{spec.key}': {e} (got {raw!r}). Set it in cdk.json \"context\" or with "
            f"`npx cdk deploy -c {spec.key}=...`; default: {spec.default!r}."
        ) from None


def region_from(environ: Mapping[str, str]) -> str:
    """The deployment region: the first of CDK_DEFAULT_REGION, AWS_REGION, AWS_DEFAULT_REGION, else us-east-1."""
    for name in REGION_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            if not _REGION.fullmatch(value):
                raise SettingsError(f"environment variable {name}={value!r} is not an AWS region such as us-east-1")
            return value
    return DEFAULT_REGION


def account_from(environ: Mapping[str, str]) -> str | None:
    """The deployment account from CDK_DEFAULT_ACCOUNT, or None (an environment-agnostic account)."""
    value = environ.get(ACCOUNT_VARIABLE, "").strip()
    if not value:
        return None
    if not _ACCOUNT.fullmatch(value):
        raise SettingsError(f"environment variable {ACCOUNT_VARIABLE}={value!r} is not a 12-digit AWS account id")
    return value


def load_settings(get_context: Callable[[str], Any], environ: Mapping[str, str]) -> Settings:
    """Read and validate every setting.

    Args:
        get_context: looks a context key up (``app.node.try_get_context``); None means "not set".
        environ: the process environment (region and account).

    Raises:
        SettingsError: the first bad setting, by name.
    """
    values = {spec.attribute: parse_setting(spec, get_context(spec.key)) for spec in SETTING_SPECS}
    return Settings(region=region_from(environ), account=account_from(environ), **values)
