"""Pipeline failures, executed in moto's Step Functions interpreter (issue 7), with the deployed definition and the
fixtures of tests/functional/stacks/test_state_machine.py: each SageMaker step that fails ends in a notification and a
Fail carrying the cause, and leaves a previously deployed endpoint serving on its old config; a failed run leaves the
dataset complete for the re-run and nothing half-deployed; SageMaker calls retry with backoff.

moto reports any failed SDK call as ``States.Runtime`` (AWS says ``SageMaker.AmazonSageMakerException`` for
throttling), so retries on SageMaker errors are checked in the definition, not by a throttled execution. moto
also cannot start a second execution once one has run in the same mock (deep-copying the state machine hits a
lock), so the re-run itself is not executed here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend

from stacks.pipeline import definition as d
from stacks.pipeline import deploy as deployment
from stacks.pipeline import registry as r
from stacks.pipeline.asl import SAGEMAKER_API_ERRORS
from tests.functional.stacks.test_state_machine import ENDPOINT, FAST_POLLING, deployed_definition, existing_endpoint
from tests.functional.stacks.test_state_machine import deploy as deploy  # the fixture
from tests.support.cdk import synthesized

FAILURES = {
    "create_hyper_parameter_tuning_job": "CreateHyperParameterTuningJob",
    "create_training_job": "CreateTrainingJob",
    "create_model": "CreateModel",
    "create_endpoint_config": "CreateEndpointConfig",
    "update_endpoint": "UpdateEndpoint",
}
# Steps of the deployment state machine, which the pipeline waits for: their failure comes back as DeploymentFailed.
DEPLOYMENT_STEPS = frozenset({"create_model", "create_endpoint_config", "update_endpoint"})


def fail_calls(monkeypatch: pytest.MonkeyPatch, method: str, times: int = 1_000) -> list[int]:
    """Make moto's SageMaker ``method`` fail its next ``times`` calls (the list counts the failures so far)."""
    failed: list[int] = []
    if method == "update_endpoint":  # the shim the deploy fixture installs; patch it after the fixture ran
        from moto.sagemaker.responses import SageMakerResponse

        original = SageMakerResponse.update_endpoint

        def failing_response(self: Any) -> Any:
            if len(failed) < times:
                failed.append(1)
                raise ValidationError("ResourceLimitExceeded: the account's instance quota is used up")
            return original(self)

        monkeypatch.setattr(SageMakerResponse, "update_endpoint", failing_response)
        return failed
    original_backend = getattr(SageMakerModelBackend, method)

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(failed) < times:
            failed.append(1)
            raise ValidationError(f"{method} refused: ResourceLimitExceeded for the account")
        return original_backend(self, *args, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, method, failing)
    return failed


@pytest.mark.parametrize("method", list(FAILURES))
def test_each_sagemaker_step_failing_notifies_fails_with_the_cause_and_keeps_the_old_endpoint(
    deploy: Any, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    pipeline = deploy()
    existing_endpoint(pipeline.sagemaker)
    failed = fail_calls(monkeypatch, method)

    run = pipeline.run(FAST_POLLING)

    assert failed, f"{method} was never called: {run.states}"
    assert run.status == "FAILED"
    assert FAILURES[method] in run.cause and "ResourceLimitExceeded" in run.cause
    if method in DEPLOYMENT_STEPS:
        assert run.error == r.DEPLOYMENT_FAILED_ERROR
        assert "its deployment" in run.cause and "DeploymentStepFailed" in run.cause
        assert run.states[-4:] == [r.DEPLOYMENT_FAILED, d.NOTIFY_FAILURE, d.CHECK_ERROR_NAME, d.FAILED]
    else:
        assert run.error == d.STEP_FAILED_ERROR
        assert run.states[-3:] == [d.NOTIFY_FAILURE, d.CHECK_ERROR_NAME, d.STEP_FAILED]
    (notice,) = run.notifications
    assert notice["Subject"] == "bincount: pipeline failed"
    assert FAILURES[method] in notice["Message"]["cause"]
    assert not run.entered(d.NOTIFY_SUCCESS)
    # The endpoint the previous execution deployed still serves, on its old config.
    endpoint = pipeline.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "bincount-config-previous"


def test_a_failed_run_leaves_the_dataset_complete_for_the_rerun_and_nothing_half_deployed(
    deploy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a re-run starts from after a failure: every image already copied (PrepareDataset skips what is there,
    see the happy path), no model or endpoint config created, the failure reported once."""
    pipeline = deploy()
    failed = fail_calls(monkeypatch, "create_training_job", times=1)

    run = pipeline.run(FAST_POLLING)

    assert run.status == "FAILED" and failed == [1]
    assert set(run.copied) == {e["dest_key"] for e in pipeline.manifest}
    assert all(run.copied[e["dest_key"]] == f"jpeg {e['id']}".encode() for e in pipeline.manifest)
    assert pipeline.sagemaker.list_models()["Models"] == []
    assert pipeline.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert [n["Subject"] for n in run.notifications] == ["bincount: pipeline failed"]


def test_sagemaker_calls_retry_with_exponential_backoff() -> None:
    synth = synthesized()
    states = {
        **deployed_definition(synth)["States"],
        **json.loads(synth.state_machine("Lifecycle")["Properties"]["DefinitionString"])["States"],
    }
    sagemaker = {
        name: state
        for name, state in states.items()
        if state.get("Type") == "Task" and ":sagemaker:" in state.get("Resource", "")
    }
    assert {
        d.TUNE,
        d.TRAIN,
        r.REGISTER_MODEL,
        r.RECORD_APPROVAL,
        deployment.CREATE_MODEL,
        deployment.CREATE_ENDPOINT_CONFIG,
        deployment.CREATE_ENDPOINT,
        deployment.UPDATE_ENDPOINT,
    } <= set(sagemaker)
    for name, state in sagemaker.items():
        (retrier,) = [r for r in state["Retry"] if r["ErrorEquals"] == list(SAGEMAKER_API_ERRORS)]
        assert "SageMaker.AmazonSageMakerException" in retrier["ErrorEquals"], name  # throttling comes as this
        assert retrier["MaxAttempts"] >= 3 and retrier["IntervalSeconds"] >= 1 and retrier["BackoffRate"] >= 2, name
        assert retrier.get("JitterStrategy") == "FULL", name
        attempts = range(retrier["MaxAttempts"])
        total_wait = sum(retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i for i in attempts)
        assert total_wait <= 300, name  # backs off, but a real failure still reaches the notification soon
