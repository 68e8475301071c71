"""The synthesized state machine definition, read statically: wiring, error handling, and the SageMaker requests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from bincount.cloud.settings import MAX_TUNING_JOB_NAME, SETTING_SPECS
from bincount.training.metrics import RULE_NAMES, TUNING_OBJECTIVE, metric_definitions
from stacks.pipeline import definition as d
from stacks.pipeline import deploy, scale
from stacks.pipeline import registry as r
from stacks.pipeline.asl import PLACEHOLDERS, SAGEMAKER_API_ERRORS, format_string, to_json
from tests.support.cdk import Synthesized, synthesized


@pytest.fixture(scope="module")
def synth() -> Synthesized:
    return synthesized()


@pytest.fixture(scope="module")
def text(synth: Synthesized) -> str:
    return synth.state_machine()["Properties"]["DefinitionString"]


@pytest.fixture(scope="module")
def asl(text: str) -> dict[str, Any]:
    return json.loads(text)


def all_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        if "ItemProcessor" in state:
            yield from all_states(state["ItemProcessor"]["States"])


def targets(state: dict[str, Any]) -> set[str]:
    found = {state["Next"]} if "Next" in state else set()
    found |= {c["Next"] for c in state.get("Choices", [])} | {c["Next"] for c in state.get("Catch", [])}
    if "Default" in state:
        found.add(state["Default"])
    return found


def test_every_state_of_the_design_is_there_in_order(asl: dict[str, Any]) -> None:
    names = list(asl["States"])
    order = [
        d.APPLY_DEFAULTS,
        d.PREPARE_DATASET,
        d.CHOOSE_FEATURE_CACHE,
        d.EXTRACT_FEATURES,
        d.TUNE,
        d.PICK_BEST,
        d.TRAIN,
        d.QUALITY_GATE,
        r.REGISTER_MODEL,
        r.START_DEPLOYMENT,
        d.NOTIFY_SUCCESS,
    ]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    assert asl["StartAt"] == d.APPLY_DEFAULTS


def test_every_transition_lands_on_a_state_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    for scope in (asl, asl["States"][d.PREPARE_DATASET]["ItemProcessor"]):
        states = scope["States"]
        edges = {name: targets(state) for name, state in states.items()}
        assert set().union(*edges.values()) <= set(states)
        seen, todo = set(), [scope["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(edges[name])
        assert seen == set(states)
    names = [name for name, _ in all_states(asl["States"])]
    assert len(names) == len(set(names)), "state names must be unique across the whole definition"


def test_every_task_retries_and_every_top_level_task_is_caught(asl: dict[str, Any]) -> None:
    tasks = [(n, s) for n, s in all_states(asl["States"]) if s["Type"] == "Task"]
    assert len(tasks) >= 10
    assert all(s["Retry"] and all(r["BackoffRate"] >= 2 for r in s["Retry"]) for _, s in tasks)
    for name, state in asl["States"].items():
        if state["Type"] in ("Task", "Map"):
            *specific, catch = state["Catch"]
            # StartDeployment reads a failed deployment's own error and cause first.
            assert [c["Next"] for c in specific] == ([r.READ_DEPLOYMENT_FAILURE] if name == r.START_DEPLOYMENT else [])
            assert catch["ErrorEquals"] == ["States.ALL"], name
            expected = d.CHECK_ERROR_NAME if name == d.NOTIFY_FAILURE else d.NOTIFY_FAILURE
            assert catch["Next"] == expected, name
    sagemaker_tasks = [s for _, s in tasks if ":sagemaker:" in s["Resource"]]
    assert all(s["Retry"][0]["ErrorEquals"] == list(SAGEMAKER_API_ERRORS) for s in sagemaker_tasks)


def test_every_failure_path_notifies_then_fails(asl: dict[str, Any]) -> None:
    errors = [n for n, s in asl["States"].items() if s["Type"] == "Pass" and s.get("ResultPath") == "$.error"]
    assert sorted(errors) == sorted(
        [
            d.INVALID_SETTINGS,
            d.NO_BEST,
            d.NO_TEST_ACCURACY,
            d.GATE_REJECTED,
            d.TRAINING_ISSUES_REJECTED,
            r.DEPLOYMENT_FAILED,
        ]
    )
    # The gate's refusals register the model Rejected first (with the cause), then notify.
    rejections = {d.NO_TEST_ACCURACY, d.GATE_REJECTED, d.TRAINING_ISSUES_REJECTED}
    assert all(asl["States"][n]["Next"] == d.NOTIFY_FAILURE for n in errors if n not in rejections)
    assert {asl["States"][n]["Next"] for n in rejections} == {r.REJECT_MODEL, r.REJECT_MODEL_WITHOUT_ACCURACY}
    assert asl["States"][r.CHECK_APPROVAL]["Default"] == d.NOTIFY_FAILURE
    fails = {n for n, s in asl["States"].items() if s["Type"] == "Fail"}
    assert fails == {d.FAILED, d.STEP_FAILED}
    assert asl["States"][d.NOTIFY_FAILURE]["Resource"] == "arn:aws:states:::sns:publish"


def test_only_the_sagemaker_jobs_are_sync_and_the_rest_poll(asl: dict[str, Any]) -> None:
    sync = {n: s["Resource"] for n, s in all_states(asl["States"]) if s.get("Resource", "").endswith(".sync")}
    assert sync == {
        d.EXTRACT_FEATURES: "arn:aws:states:::sagemaker:createTrainingJob.sync",
        d.TUNE: "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync",
        d.TRAIN: "arn:aws:states:::sagemaker:createTrainingJob.sync",
        scale.BUILD_FULL_MANIFEST: "arn:aws:states:::sagemaker:createTrainingJob.sync",
        scale.EXTRACT_FEATURES_SHARDED: "arn:aws:states:::sagemaker:createTrainingJob.sync",
    }
    # The deployment is waited for (.sync:2: its output as JSON); inside it the endpoint is polled.
    assert asl["States"][r.START_DEPLOYMENT]["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    deployment = json.loads(synthesized().state_machine("Lifecycle")["Properties"]["DefinitionString"])["States"]
    assert not [n for n, s in deployment.items() if ".sync" in s.get("Resource", "")]
    wait = deployment[deploy.WAIT_FOR_ENDPOINT]
    assert (wait["Type"], wait["SecondsPath"], wait["Next"]) == (
        "Wait",
        "$.config.endpointPollSeconds",
        deploy.COUNT_POLL,
    )
    assert deployment[deploy.COUNT_POLL]["Next"] == deploy.DESCRIBE_ENDPOINT


def test_prepare_dataset_is_a_distributed_map_over_the_manifest(asl: dict[str, Any]) -> None:
    state = asl["States"][d.PREPARE_DATASET]
    assert state["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert state["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": "${DataBucket}", "Key": "manifests/manifest.json"},
    }
    assert state["MaxConcurrency"] == 100 and state["ResultWriter"]["Parameters"]["Prefix"] == "map-runs"
    copy = state["ItemProcessor"]["States"][d.COPY_IMAGE]
    assert copy["Resource"] == "arn:aws:states:::aws-sdk:s3:copyObject"
    assert copy["Parameters"]["CopySource.$"] == "States.Format('aft-vbi-pds/{}', $.source_key)"
    # A few photos not copied are tolerated; a vanished one is skipped at once, without retries.
    assert state["ToleratedFailurePercentage"] == d.COPY_TOLERATED_FAILURE_PERCENT == 1
    assert copy["Retry"][0]["ErrorEquals"] == [d.S3_NO_SUCH_KEY] and copy["Retry"][0]["MaxAttempts"] == 0
    assert copy["Catch"] == [{"ErrorEquals": [d.S3_NO_SUCH_KEY], "ResultPath": "$.error", "Next": d.SOURCE_MISSING}]


def test_placeholders_are_exactly_the_substitutions(synth: Synthesized, text: str) -> None:
    used = set(re.findall(r"\$\{([A-Za-z]+)\}", text))
    properties = synth.state_machine()["Properties"]
    assert used == set(PLACEHOLDERS) == set(properties["DefinitionSubstitutions"])


def test_defaults_are_the_runtime_settings_and_images(asl: dict[str, Any], synth: Synthesized) -> None:
    defaults = asl["States"][d.APPLY_DEFAULTS]["Parameters"]["defaults"]
    assert defaults == {
        **synth.stack.settings.runtime_values(),
        "tuningImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10-cpu-py313",
        "trainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.10-cpu-py313",
        "inferenceImage": "${InferenceImage}",  # the endpoint image asset, substituted at deploy
    }
    assert asl["States"][d.APPLY_DEFAULTS]["Parameters"]["overrides.$"] == "$"


def test_job_names_are_unique_per_execution_and_short_enough(asl: dict[str, Any]) -> None:
    run = asl["States"][d.NAME_JOBS]["Parameters"]["run"]
    template = re.fullmatch(r"States\.Format\('([^']+)', \$\.uuid\[0\], \$\.uuid\[1\]\)", run["tuningJobName.$"])
    assert template is not None
    assert run["featuresJobName.$"] == run["trainingJobName.$"].replace("-train-", "-features-")
    # Two UUID parts: 8 + 4 hex digits fill the two placeholders.
    assert len(template[1].replace("{}{}", "0" * 12)) <= MAX_TUNING_JOB_NAME
    assert asl["States"][d.MERGE_SETTINGS]["Parameters"]["uuid.$"] == "States.StringSplit(States.UUID(), '-')"


def test_tuning_request(asl: dict[str, Any]) -> None:
    request = asl["States"][d.TUNE]["Parameters"]
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": TUNING_OBJECTIVE}
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    definition = request["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert definition["InputDataConfig.$"] == "$.channels.tuning"
    assert definition["ResourceConfig"]["InstanceType.$"] == "$.config.tuningInstanceType"
    assert definition["StaticHyperParameters.$"] == "$.run.staticHyperParameters"
    assert asl["States"][d.NAME_JOBS]["Parameters"]["run"]["staticHyperParameters"]["sagemaker_program"] == "hpo.py"
    assert definition["EnableManagedSpotTraining.$"] == "$.capacity.spot"


def channel_names(channels: list[dict[str, Any]]) -> list[str]:
    return [c["ChannelName"] for c in channels]


def test_feature_cache_chooses_the_channels_of_trials_and_final_job(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert states[d.PREPARE_DATASET]["Next"] == d.COUNT_COPIED
    assert states[d.COUNT_COPIED]["Next"] == d.CHOOSE_FEATURE_CACHE
    choose = states[d.CHOOSE_FEATURE_CACHE]
    # (Before it, the scale-out rules, which the default settings match none of: tests/functional/stacks/test_scale.py.)
    assert choose["Choices"] == [
        *scale.feature_cache_rules(),
        {"Variable": "$.config.featureCache", "BooleanEquals": True, "Next": d.EXTRACT_FEATURES},
    ]
    assert choose["Default"] == d.USE_PHOTO_CHANNELS
    assert states[d.EXTRACT_FEATURES]["Next"] == d.USE_CACHED_FEATURES
    assert states[d.USE_CACHED_FEATURES]["Next"] == states[d.USE_PHOTO_CHANNELS]["Next"] == d.TUNE
    cached = states[d.USE_CACHED_FEATURES]["Parameters"]
    assert (channel_names(cached["tuning"]), channel_names(cached["training"])) == (["features"], ["features", "test"])
    source = cached["tuning"][0]["DataSource"]["S3DataSource"]
    assert source == {
        "S3DataType": "S3Prefix",
        "S3Uri.$": "$.features.ModelArtifacts.S3ModelArtifacts",
        "S3DataDistributionType": "FullyReplicated",
    }
    assert cached["training"][0] == cached["tuning"][0]
    photos = states[d.USE_PHOTO_CHANNELS]["Parameters"]
    assert channel_names(photos["tuning"]) == ["train", "valid"]
    assert channel_names(photos["training"]) == ["train", "valid", "test"]
    assert {c["DataSource"]["S3DataSource"]["S3Uri"] for c in photos["training"]} == {
        f"s3://${{DataBucket}}/{name}/" for name in ("train", "valid", "test")
    }
    assert states[d.USE_CACHED_FEATURES]["ResultPath"] == states[d.USE_PHOTO_CHANNELS]["ResultPath"] == "$.channels"


def test_feature_extraction_request(asl: dict[str, Any]) -> None:
    request = asl["States"][d.EXTRACT_FEATURES]["Parameters"]
    assert request["TrainingJobName.$"] == "$.run.featuresJobName"
    assert request["HyperParameters"]["sagemaker_program"] == "extract_features.py"
    assert request["HyperParameters"]["sagemaker_submit_directory"] == "${TrainingSourceUrl}"
    assert request["HyperParameters"]["batch-size.$"] == "States.Format('{}', $.config.batchSize)"
    assert channel_names(request["InputDataConfig"]) == ["train", "valid"]
    assert request["ResourceConfig"]["InstanceType.$"] == "$.config.trainingInstanceType"
    assert request["AlgorithmSpecification"]["TrainingImage.$"] == "$.config.trainingImage"
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://${DataBucket}/jobs/features/"}
    assert request["EnableManagedSpotTraining.$"] == "$.capacity.spot"
    assert asl["States"][d.EXTRACT_FEATURES]["ResultPath"] == "$.features"


def test_training_request_has_checkpoints_the_merged_hyperparameters_and_no_debugger(asl: dict[str, Any]) -> None:
    request = asl["States"][d.TRAIN]["Parameters"]
    assert request["HyperParameters.$"] == "$.best.hyperParameters"
    assert request["InputDataConfig.$"] == "$.channels.training"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert request["CheckpointConfig"] == {"S3Uri.$": "$.run.checkpointUri", "LocalPath": "/opt/ml/checkpoints"}
    # sagemakerDebugger is off by default: the training code's own rules and profile run instead.
    assert request["ProfilerConfig"] == {"DisableProfiler": True}
    assert not {"DebugHookConfig", "DebugRuleConfigurations", "ProfilerRuleConfigurations"} & set(request)
    merge = asl["States"][d.PICK_BEST]["Parameters"]["hyperParameters.$"]
    assert "$.run.staticHyperParameters" in merge and "TunedHyperParameters" in merge


def test_rule_and_profile_metrics_are_captured_by_trials_and_the_final_job(asl: dict[str, Any]) -> None:
    tuning = asl["States"][d.TUNE]["Parameters"]["TrainingJobDefinition"]["AlgorithmSpecification"]
    training = asl["States"][d.TRAIN]["Parameters"]["AlgorithmSpecification"]
    for spec in (tuning, training):
        names = {m["Name"] for m in spec["MetricDefinitions"]}
        assert {f"rule:{rule}" for rule in RULE_NAMES} | {"profile:images_per_second"} <= names
        assert all("(?<" not in m["Regex"] for m in spec["MetricDefinitions"]), "no lookbehinds"
        assert len(spec["MetricDefinitions"]) <= 40


def test_with_sagemaker_debugger_the_training_request_has_hook_rules_and_profiler() -> None:
    debugger = json.loads(
        synthesized(sagemakerDebugger=True, frameworkVersion="2.1", pyVersion="py310").state_machine()["Properties"][
            "DefinitionString"
        ]
    )
    request = debugger["States"][d.TRAIN]["Parameters"]
    rules = {r["RuleParameters"]["rule_to_invoke"] for r in request["DebugRuleConfigurations"]}
    assert rules == {"LossNotDecreasing", "Overfit", "VanishingGradient", "PoorWeightInitialization"}
    collections = {c["CollectionName"] for c in request["DebugHookConfig"]["CollectionConfigurations"]}
    assert collections == {"losses", "weights", "gradients", "biases", "relu_input"}
    assert request["ProfilerRuleConfigurations"][0]["RuleParameters"] == {"rule_to_invoke": "ProfilerReport"}
    assert request["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    images = {
        r["RuleEvaluatorImage"] for r in request["DebugRuleConfigurations"] + request["ProfilerRuleConfigurations"]
    }
    assert images == {"503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"}


def test_model_runs_the_handler_from_the_artifact_on_the_endpoint_instance(asl: dict[str, Any]) -> None:
    # The package records the container; the deployment builds the model from the package alone.
    (model,) = asl["States"][r.REGISTER_MODEL]["Parameters"]["InferenceSpecification"]["Containers"]
    assert model["ModelDataUrl.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert model["Environment"]["SAGEMAKER_PROGRAM"] == "endpoint_inference.py"
    assert model["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"  # the handler uses both vCPUs per request
    deployment = json.loads(synthesized().state_machine("Lifecycle")["Properties"]["DefinitionString"])["States"]
    assert deployment[deploy.CREATE_MODEL]["Parameters"]["PrimaryContainer"] == {"ModelPackageName.$": "$.package.arn"}
    for name in (deploy.CREATE_ENDPOINT_CONFIG, deploy.CREATE_ENDPOINT_CONFIG_WITH_CAPTURE):
        (variant,) = deployment[name]["Parameters"]["ProductionVariants"]
        assert variant["InstanceType.$"] == "$.config.endpointInstanceType"
        assert variant["InitialInstanceCount.$"] == "$.config.minInstances"


def test_numbers_are_written_without_exponent_padding() -> None:
    assert (
        to_json({"a": 1e-05, "b": [1e-09, 0.5], "c": 12})
        == '{\n  "a": 1e-5,\n  "b": [\n    1e-9,\n    0.5\n  ],\n  "c": 12\n}'
    )
    assert json.loads(to_json({"x": 2.5e-07})) == {"x": 2.5e-07}


def test_format_string_refuses_quotes() -> None:
    with pytest.raises(ValueError, match="quotes"):
        format_string("the endpoint's {}", "$.x")


def test_validate_settings_checks_the_type_of_every_runtime_setting_from_the_table(asl: dict[str, Any]) -> None:
    """ValidateSettings' type checks come from the settings table: one per runtime setting (and image), of its type."""
    checks = {
        choice["Not"]["Variable"].removeprefix("$.config."): next(k for k in choice["Not"] if k != "Variable")
        for choice in asl["States"][d.VALIDATE_SETTINGS]["Choices"][0]["Or"]
    }
    expected = {spec.key: d.type_test(spec.key, spec.default) for spec in SETTING_SPECS if spec.runtime}
    assert {k: v for k, v in checks.items() if k in expected} == expected
    assert set(checks) - set(expected) == {"tuningImage", "trainingImage", "inferenceImage"}
    assert checks["featureCache"] == "IsBoolean" and checks["epochs"] == "IsNumeric"
    with pytest.raises(ValueError, match="no ASL type check"):
        d.type_test("nothing", None)


def test_the_happy_path_is_a_chain_of_transitions(asl: dict[str, Any]) -> None:
    """definition.HAPPY_PATH, the one list a reader follows, is what the deployed definition does on a default run."""
    states = asl["States"]
    assert asl["StartAt"] == d.HAPPY_PATH[0]
    for here, there in zip(d.HAPPY_PATH, d.HAPPY_PATH[1:], strict=False):
        state = states[here]
        targets = {state.get("Next"), state.get("Default")} | {c.get("Next") for c in state.get("Choices", [])}
        assert there in targets, (here, there)
    assert states[d.HAPPY_PATH[-1]].get("End") is True
    # Every other top-level state is a branch or a failure, reachable from the path.
    assert set(d.HAPPY_PATH) <= set(states)
