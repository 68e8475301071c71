"""Settings: cdk.json documents every default, values parse from JSON or -c strings, bad values name their key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from bincount.cloud.settings import (
    MAX_NAME_PREFIX,
    MAX_TUNING_JOB_NAME,
    RUN_ID_LENGTH,
    SETTING_SPECS,
    Settings,
    SettingsError,
    default_context,
    load_settings,
)
from tests.support.cdk import CDK_JSON, ROOT, cdk_context


def settings_with(**context: Any) -> Settings:
    return load_settings(context.get, {})


def test_cdk_json_documents_every_setting_with_its_default() -> None:
    documented = {k: v for k, v in cdk_context().items() if not k.startswith("@aws-cdk/")}
    assert documented == default_context()
    assert json.loads(CDK_JSON.read_text())["app"] == ".venv/bin/python app.py"


def test_defaults() -> None:
    settings = settings_with()
    assert settings.region == "us-east-1" and settings.account is None
    assert settings.endpoint_instance_type == "ml.t2.medium"
    # Trials train only the head on cached features: a small CPU instance is enough.
    assert (settings.feature_cache, settings.tuning_instance_type) == (True, "ml.m5.large")
    assert (settings.framework_version, settings.py_version) == ("2.10", "py313")
    assert (settings.serving_image, settings.inference_framework_version) == ("project", "2.6")
    assert (settings.lr_min, settings.lr_max, settings.eps_min, settings.eps_max) == (1e-5, 1e-1, 1e-9, 1e-8)
    assert (settings.weight_decay_min, settings.weight_decay_max) == (1e-3, 1e-1)
    assert settings.max_images_per_count is None
    assert settings.endpoint_name == "bincount-endpoint"
    assert settings.state_machine_name == "bincount-pipeline"


def test_every_setting_is_documented() -> None:
    undocumented = [spec.key for spec in SETTING_SPECS if not (spec.doc.endswith(".") and len(spec.doc) > 20)]
    assert undocumented == []
    assert len({spec.key for spec in SETTING_SPECS}) == len(SETTING_SPECS)


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("epochs", "7", 7),
        ("epochs", 7.0, 7),
        ("accuracyFloor", "0.45", 0.45),
        ("useSpot", "false", False),
        ("useSpot", "True", True),
        ("featureCache", "false", False),
        ("tuningInstanceType", "ml.m5.2xlarge", "ml.m5.2xlarge"),
        ("maxImagesPerCount", "100", 100),
        ("maxImagesPerCount", "null", None),
        ("notificationEmail", " ops@example.com ", "ops@example.com"),
        ("trainingInstanceType", "ml.g4dn.xlarge", "ml.g4dn.xlarge"),
        ("logRetentionDays", "90", 90),
    ],
)
def test_values_from_cdk_json_or_the_command_line(key: str, raw: Any, expected: Any) -> None:
    assert settings_with(**{key: raw}).value(key) == expected


@pytest.mark.parametrize(
    ("key", "raw", "says"),
    [
        ("epochs", "four", "whole number"),
        ("epochs", 0, "between 1 and 1000"),
        ("epochs", True, "not true/false"),
        ("useSpot", "yes", "true or false"),
        ("accuracyFloor", 1.5, "between 0 and 1"),
        ("lrMin", -1, "greater than 0"),
        ("trainingInstanceType", "m5.xlarge", "SageMaker instance type"),
        ("notificationEmail", "not-an-email", "e-mail address"),
        ("maxImagesPerCount", 0, "at least 1"),
        ("namePrefix", "Bin_Count", "lower-case"),
        ("logRetentionDays", 31, "retention periods"),
        ("frameworkVersion", "latest", "version"),
        ("approval", "yes", "one of auto, manual"),
        ("minInstances", 0, "between 1 and 100"),
        ("dataCapturePercent", 101, "between 0 and 100"),
        ("bakeMinutes", 61, "between 0 and 60"),
    ],
)
def test_a_bad_value_fails_naming_the_setting(key: str, raw: Any, says: str) -> None:
    with pytest.raises(SettingsError, match=f"setting '{key}'") as caught:
        settings_with(**{key: raw})
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"lrMin": 0.2, "lrMax": 0.1}, "lrMin"),
        ({"epsMin": 1e-8}, "epsMin"),
        ({"tuningMaxJobs": 2, "tuningMaxParallelJobs": 3}, "tuningMaxParallelJobs"),
        ({"maxRuntimeSeconds": 7200, "maxWaitSeconds": 3600}, "maxWaitSeconds"),
        ({"namePrefix": "a" * (MAX_NAME_PREFIX + 1)}, "namePrefix"),
        ({"minInstances": 3, "maxInstances": 2}, "minInstances"),
    ],
)
def test_inconsistent_settings_fail_naming_the_setting(context: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError, match=f"setting '{key}'"):
        settings_with(**context)


def test_the_longest_prefix_still_gives_tuning_job_names_within_32_characters() -> None:
    prefix = "a" * MAX_NAME_PREFIX
    assert settings_with(namePrefix=prefix).name_prefix == prefix
    assert len(f"{prefix}-hpo-{'0' * RUN_ID_LENGTH}") == MAX_TUNING_JOB_NAME


@pytest.mark.parametrize(
    ("environ", "region", "account"),
    [
        ({}, "us-east-1", None),
        ({"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "123456789012"}, "eu-west-1", "123456789012"),
        ({"AWS_REGION": "ap-southeast-2"}, "ap-southeast-2", None),
        ({"AWS_DEFAULT_REGION": "us-west-2", "CDK_DEFAULT_REGION": "eu-central-1"}, "eu-central-1", None),
    ],
)
def test_region_and_account_come_from_the_environment(
    environ: dict[str, str], region: str, account: str | None
) -> None:
    settings = load_settings(lambda key: None, environ)
    assert (settings.region, settings.account) == (region, account)


@pytest.mark.parametrize("environ", [{"CDK_DEFAULT_REGION": "Europe"}, {"CDK_DEFAULT_ACCOUNT": "12345"}])
def test_a_bad_environment_fails_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(environ))):
        load_settings(lambda key: None, environ)


def test_runtime_settings_are_the_ones_an_execution_may_override() -> None:
    runtime = settings_with(epochs=9).runtime_values()
    assert runtime["epochs"] == 9
    assert {"accuracyFloor", "useSpot", "featureCache", "tuningMaxJobs", "lrMin", "endpointInstanceType"} <= set(
        runtime
    )
    assert not {"namePrefix", "maxImagesPerCount", "notificationEmail", "stackName"} & set(runtime)
    # Per execution (the pipeline passes the deployment's on); bakeMinutes is rendered into the request at synth.
    assert {"approval", "minInstances", "maxInstances", "dataCapturePercent"} <= set(runtime)
    assert "bakeMinutes" not in runtime


def test_the_app_reports_a_bad_setting_by_name_and_exits_non_zero() -> None:
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"epochs": "four"})}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "setting 'epochs': expected a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_debugger_and_training_issue_settings_default_off() -> None:
    settings = settings_with()
    assert (settings.sagemaker_debugger, settings.stop_on_training_issues) == (False, False)
    assert settings.runtime_values()["stopOnTrainingIssues"] is False, "an execution input may override it"
    assert "sagemakerDebugger" not in settings.runtime_values(), "it shapes the template: a deploy changes it"


@pytest.mark.parametrize("version", ["2.0", "2.1", "2.1.0"])
def test_sagemaker_debugger_is_allowed_on_containers_with_smdebug(version: str) -> None:
    assert settings_with(sagemakerDebugger="true", frameworkVersion=version).sagemaker_debugger is True


@pytest.mark.parametrize("version", ["2.10", "2.3", "1.13"])
def test_sagemaker_debugger_is_refused_without_smdebug_naming_both_settings(version: str) -> None:
    with pytest.raises(SettingsError, match="sagemakerDebugger") as refused:
        settings_with(sagemakerDebugger=True, frameworkVersion=version)
    assert "frameworkVersion" in str(refused.value) and repr(version) in str(refused.value)
