"""The SageMaker API requests of the pipeline's tasks, as state ``Parameters`` (JSONPath).

Values that vary per execution come from the execution's JSON: ``$.config`` (settings after ApplyDefaults),
``$.run`` (this execution's names), ``$.capacity`` (spot or on-demand), ``$.best`` (merged hyperparameters),
``$.training`` (the final job's Describe output). Everything else is fixed at synth time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bincount.data.manifest import SPLITS
from bincount.training.metrics import TUNING_OBJECTIVE, metric_definitions
from bincount.training.tuning import DEFAULT_RANGES
from stacks.pipeline.asl import DATA_BUCKET, SAGEMAKER_ROLE_ARN, TRAINING_SOURCE_URL
from stacks.storage import JOBS_PREFIX

HPO_PROGRAM = "hpo.py"
TRAIN_PROGRAM = "train_model.py"
FEATURES_PROGRAM = "extract_features.py"
INFERENCE_PROGRAM = "endpoint_inference.py"
MODEL_CODE_DIR = "/opt/ml/model/code"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
VARIANT_NAME = "AllTraffic"
# Every created resource is tagged with this execution's run id (the 12 hex digits in its name): an execution's own
# name may hold characters SageMaker's tag values refuse ("retrain(2)"), its run id never does.
RUN_TAG = "bincount:run"
RUN_ID_PATH = "$.run.id"
VOLUME_SIZE_GB = 30
TUNING_CHANNELS: tuple[str, ...] = ("train", "valid")
# The extraction job reads the photos of these channels; trials then read only FEATURES_CHANNEL, the final job
# FEATURES_CHANNEL and the test photos (its final evaluation runs the whole network on them).
EXTRACTION_CHANNELS: tuple[str, ...] = ("train", "valid")
FEATURES_CHANNEL = "features"
CACHED_TRAINING_PHOTO_CHANNELS: tuple[str, ...] = ("test",)
# Where a job's channels come from (ChooseFeatureCache writes them): JSONPaths into the execution's JSON.
TUNING_CHANNELS_PATH = "$.channels.tuning"
STATIC_HYPERPARAMETERS_PATH = "$.run.staticHyperParameters"
TRAINING_CHANNELS_PATH = "$.channels.training"
# Trials on one instance with the cache (a head on features), on trainingInstanceCount without it.
TUNING_INSTANCE_COUNT_PATH = "$.channels.tuningInstanceCount"
FEATURES_ARTIFACT_PATH = "$.features.ModelArtifacts.S3ModelArtifacts"

# (hyperparameter, min setting, max setting, scaling): the scalings are bincount.training.tuning's, which the local twin
# searches too; the bounds come from the settings (whose defaults are bincount.training.tuning's as well).
_RANGE_SETTINGS = {
    "lr": ("lrMin", "lrMax"),
    "eps": ("epsMin", "epsMax"),
    "weight-decay": ("weightDecayMin", "weightDecayMax"),
}
PARAMETER_RANGES: tuple[tuple[str, str, str, str], ...] = tuple(
    (r.name, *_RANGE_SETTINGS[r.name], r.scaling) for r in DEFAULT_RANGES
)
# SageMaker Debugger (setting sagemakerDebugger): its built-in rules on the final job (rule_to_invoke names) and the
# tensors they read (PoorWeightInitialization reads relu_input). Without it, the training code's own rules run alone.
DEBUGGER_RULES: tuple[str, ...] = ("LossNotDecreasing", "Overfit", "VanishingGradient", "PoorWeightInitialization")
DEBUGGER_COLLECTIONS: tuple[str, ...] = ("losses", "weights", "gradients", "biases", "relu_input")
DEBUGGER_SAVE_INTERVAL = "50"
PROFILER_INTERVAL_MS = 500
TRAINING_OUTPUT_PREFIX = f"{JOBS_PREFIX}training/"


@dataclass(frozen=True)
class RequestContext:
    """What the requests need that is fixed at synth time."""

    region: str
    debugger_rules_image: str | None = None  # SageMaker Debugger on the final job when set


def s3_url(prefix: str) -> str:
    """``s3://<data bucket>/<prefix>``."""
    return f"s3://{DATA_BUCKET}/{prefix}"


def _as_string(path: str) -> str:
    """A setting rendered as a string, as hyperparameters and ranges must be (numbers or strings alike)."""
    return f"States.Format('{{}}', {path})"


def _tags() -> list[dict[str, str]]:
    return [{"Key": RUN_TAG, "Value.$": RUN_ID_PATH}]


def tags() -> list[dict[str, str]]:
    """The tags of every job this execution creates."""
    return _tags()


def photo_channel(name: str, *, prefix: str = "") -> dict[str, Any]:
    """A File-mode channel of the photos under ``<prefix><name>/`` (``full/`` for the full dataset)."""
    return _channel(name, prefix=prefix)


def _channel(name: str, *, uri_path: str | None = None, prefix: str = "") -> dict[str, Any]:
    """A File-mode channel: the photos under ``<prefix><name>/``, or the S3 prefix at JSONPath ``uri_path``."""
    uri = {"S3Uri.$": uri_path} if uri_path else {"S3Uri": s3_url(f"{prefix}{name}/")}
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", **uri, "S3DataDistributionType": "FullyReplicated"}},
        "InputMode": "File",
    }


def photo_channels(prefix: str = "") -> dict[str, Any]:
    """Channels without the feature cache: trials fine-tune on train+valid photos, the final job on all three; each
    trial then runs on ``trainingInstanceCount`` instances like the final job."""
    return {
        "tuning": [_channel(name, prefix=prefix) for name in TUNING_CHANNELS],
        "training": [_channel(name, prefix=prefix) for name in SPLITS],
        "tuningInstanceCount.$": "$.config.trainingInstanceCount",
    }


def cached_feature_channels() -> dict[str, Any]:
    """Channels with the feature cache: the extraction job's model.tar.gz (an S3 object key, used as a prefix) holds
    ``train.features.pt`` and ``valid.features.pt``; hpo.py and train_model.py unpack it themselves."""
    features = _channel(FEATURES_CHANNEL, uri_path=FEATURES_ARTIFACT_PATH)
    return {
        "tuning": [features],
        "training": [features, *(_channel(name) for name in CACHED_TRAINING_PHOTO_CHANNELS)],
        "tuningInstanceCount": 1,
    }


def _algorithm(image_path: str) -> dict[str, Any]:
    """AlgorithmSpecification shared by trials and the final job (the tuning API has no more fields than these)."""
    return {"TrainingImage.$": image_path, "TrainingInputMode": "File", "MetricDefinitions": metric_definitions()}


def _resources(instance_type_path: str, instance_count_path: str | None = None) -> dict[str, Any]:
    count: dict[str, Any] = {"InstanceCount.$": instance_count_path} if instance_count_path else {"InstanceCount": 1}
    return {"InstanceType.$": instance_type_path, **count, "VolumeSizeInGB": VOLUME_SIZE_GB}


def static_hyperparameters(ctx: RequestContext) -> dict[str, str]:
    """Hyperparameters every trial gets; the final job gets these merged with the tuned ones.

    NameJobs renders them once into :data:`STATIC_HYPERPARAMETERS_PATH`, which Tune sends and PickBest merges.
    """
    return {
        "epochs.$": _as_string("$.config.epochs"),
        "batch-size.$": _as_string("$.config.batchSize"),
        "sagemaker_program": HPO_PROGRAM,
        "sagemaker_submit_directory": TRAINING_SOURCE_URL,
        "sagemaker_region": ctx.region,
        "sagemaker_container_log_level": "20",
    }


def final_job_overrides() -> dict[str, str]:
    """What differs between a trial's hyperparameters and the final job's: the entry point."""
    return {"sagemaker_program": TRAIN_PROGRAM}


def tuning_job(ctx: RequestContext) -> dict[str, Any]:
    """CreateHyperParameterTuningJob: Bayesian search minimising ``valid:loss`` with early stopping."""
    return {
        "HyperParameterTuningJobName.$": "$.run.tuningJobName",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": TUNING_OBJECTIVE},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs.$": "$.config.tuningMaxJobs",
                "MaxParallelTrainingJobs.$": "$.config.tuningMaxParallelJobs",
            },
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {
                        "Name": name,
                        "MinValue.$": _as_string(f"$.config.{low}"),
                        "MaxValue.$": _as_string(f"$.config.{high}"),
                        "ScalingType": scaling,
                    }
                    for name, low, high, scaling in PARAMETER_RANGES
                ]
            },
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": _algorithm("$.config.tuningImage"),
            "RoleArn": SAGEMAKER_ROLE_ARN,
            "StaticHyperParameters.$": STATIC_HYPERPARAMETERS_PATH,
            "InputDataConfig.$": TUNING_CHANNELS_PATH,
            "OutputDataConfig": {"S3OutputPath": s3_url(f"{JOBS_PREFIX}tuning/")},
            "ResourceConfig": _resources("$.config.tuningInstanceType", TUNING_INSTANCE_COUNT_PATH),
            "StoppingCondition.$": "$.capacity.stoppingCondition",
            "EnableManagedSpotTraining.$": "$.capacity.spot",
        },
        "Tags": _tags(),
    }


def feature_extraction_job(ctx: RequestContext) -> dict[str, Any]:
    """CreateTrainingJob running extract_features.py once over train+valid on the training instance type.

    Its model.tar.gz holds the cached features; no metrics, Debugger or checkpoints (a spot interruption restarts it).
    """
    return {
        "TrainingJobName.$": "$.run.featuresJobName",
        "AlgorithmSpecification": {"TrainingImage.$": "$.config.trainingImage", "TrainingInputMode": "File"},
        "RoleArn": SAGEMAKER_ROLE_ARN,
        "HyperParameters": {
            **{k: v for k, v in static_hyperparameters(ctx).items() if k != "epochs.$"},
            "sagemaker_program": FEATURES_PROGRAM,
        },
        "InputDataConfig": [_channel(name) for name in EXTRACTION_CHANNELS],
        "OutputDataConfig": {"S3OutputPath": s3_url(f"{JOBS_PREFIX}features/")},
        "ResourceConfig": _resources("$.config.trainingInstanceType"),
        "StoppingCondition.$": "$.capacity.stoppingCondition",
        "EnableManagedSpotTraining.$": "$.capacity.spot",
        "Tags": _tags(),
    }


def _debugger(ctx: RequestContext) -> dict[str, Any]:
    """SageMaker Debugger's hook, rules and Profiler; without Debugger, the Profiler explicitly off (as the SageMaker
    Python SDK sends ``disable_profiler=True``)."""
    if ctx.debugger_rules_image is None:
        return {"ProfilerConfig": {"DisableProfiler": True}}
    return {
        "DebugHookConfig": {
            "S3OutputPath": s3_url(f"{JOBS_PREFIX}debugger/"),
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": {"save_interval": DEBUGGER_SAVE_INTERVAL}}
                for name in DEBUGGER_COLLECTIONS
            ],
        },
        "DebugRuleConfigurations": [
            {
                "RuleConfigurationName": rule,
                "RuleEvaluatorImage": ctx.debugger_rules_image,
                "RuleParameters": {"rule_to_invoke": rule},
            }
            for rule in DEBUGGER_RULES
        ],
        "ProfilerConfig": {
            "S3OutputPath": s3_url(f"{JOBS_PREFIX}profiler/"),
            "ProfilingIntervalInMilliseconds": PROFILER_INTERVAL_MS,
        },
        "ProfilerRuleConfigurations": [
            {
                "RuleConfigurationName": "ProfilerReport",
                "RuleEvaluatorImage": ctx.debugger_rules_image,
                "RuleParameters": {"rule_to_invoke": "ProfilerReport"},
            }
        ],
    }


def training_job(ctx: RequestContext) -> dict[str, Any]:
    """CreateTrainingJob: best hyperparameters on ``$.channels.training``, checkpoints, and SageMaker Debugger and
    Profiler when the context has Debugger's rule image."""
    return {
        "TrainingJobName.$": "$.run.trainingJobName",
        "AlgorithmSpecification": {**_algorithm("$.config.trainingImage"), "EnableSageMakerMetricsTimeSeries": True},
        "RoleArn": SAGEMAKER_ROLE_ARN,
        "HyperParameters.$": "$.best.hyperParameters",
        "InputDataConfig.$": TRAINING_CHANNELS_PATH,
        "OutputDataConfig": {"S3OutputPath": s3_url(TRAINING_OUTPUT_PREFIX)},
        "ResourceConfig": _resources("$.config.trainingInstanceType", "$.config.trainingInstanceCount"),
        "StoppingCondition.$": "$.capacity.stoppingCondition",
        "EnableManagedSpotTraining.$": "$.capacity.spot",
        # Checkpoints every epoch: a spot interruption resumes where it stopped (bincount.training.checkpoint).
        "CheckpointConfig": {"S3Uri.$": "$.run.checkpointUri", "LocalPath": CHECKPOINT_LOCAL_PATH},
        **_debugger(ctx),
        "Tags": _tags(),
    }


def training_output_archive() -> tuple[str, str]:
    """A ``States.Format`` template and its argument: where SageMaker uploads the final job's output folder
    (``output.tar.gz``: report.html, diagnostics.json, evaluation.json, the plots and the profiler trace)."""
    return f"{s3_url(TRAINING_OUTPUT_PREFIX)}{{}}/output/output.tar.gz", "$.run.trainingJobName"


def model(ctx: RequestContext) -> dict[str, Any]:
    """CreateModel: the CPU inference container running the handler that travels in the model artifact's code/."""
    return {
        "ModelName.$": "$.run.modelName",
        "ExecutionRoleArn": SAGEMAKER_ROLE_ARN,
        "PrimaryContainer": {
            "Image.$": "$.config.inferenceImage",
            "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts",
            "Environment": {
                "SAGEMAKER_PROGRAM": INFERENCE_PROGRAM,
                "SAGEMAKER_SUBMIT_DIRECTORY": MODEL_CODE_DIR,
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": ctx.region,
                # One model-server worker: the handler already spreads each request over 2 threads (an
                # ml.t2.medium's 2 vCPUs); the default of one worker per vCPU would run 4 threads on 2 vCPUs under
                # concurrent requests and hold two copies of the model in 4 GiB.
                "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            },
        },
        "Tags": _tags(),
    }


def endpoint_config() -> dict[str, Any]:
    """CreateEndpointConfig: one instance of the endpoint instance type serving the new model."""
    return {
        "EndpointConfigName.$": "$.run.endpointConfigName",
        "ProductionVariants": [
            {
                "VariantName": VARIANT_NAME,
                "ModelName.$": "$.run.modelName",
                "InitialInstanceCount": 1,
                "InstanceType.$": "$.config.endpointInstanceType",
                "InitialVariantWeight": 1,
            }
        ],
        "Tags": _tags(),
    }


def create_endpoint(endpoint_name: str) -> dict[str, Any]:
    return {"EndpointName": endpoint_name, "EndpointConfigName.$": "$.run.endpointConfigName", "Tags": _tags()}


def update_endpoint(endpoint_name: str) -> dict[str, Any]:
    return {"EndpointName": endpoint_name, "EndpointConfigName.$": "$.run.endpointConfigName"}
