"""Small builders of Amazon States Language fragments (JSONPath), shared by the pipeline's states.

The definition is plain JSON built here in Python and handed to CDK with ``DefinitionSubstitutions`` for the few
values CloudFormation knows only at deploy time (the ``${...}`` placeholders below). Keeping it plain JSON means the
tests can run the very same definition in moto's Step Functions interpreter.
"""

from __future__ import annotations

import json
import re
from typing import Any

State = dict[str, Any]

# DefinitionSubstitutions: CloudFormation fills these in at deploy time.
DATA_BUCKET = "${DataBucket}"
SAGEMAKER_ROLE_ARN = "${SageMakerRoleArn}"
TOPIC_ARN = "${NotificationTopicArn}"
TRAINING_SOURCE_URL = "${TrainingSourceUrl}"
INFERENCE_IMAGE = "${InferenceImage}"
"""The endpoint's image: the project's image asset (built at deploy) or the prebuilt one."""
PLACEHOLDERS: tuple[str, ...] = (
    "DataBucket",
    "SageMakerRoleArn",
    "NotificationTopicArn",
    "TrainingSourceUrl",
    "InferenceImage",
    "DeployStateMachineArn",
)

# Where states keep their results in the execution's JSON.
ERROR_PATH = "$.error"

# The optimised SageMaker integration reports throttling ("Rate exceeded") as SageMaker.AmazonSageMakerException;
# AWS SDK integrations name the same failure SageMaker.SageMakerException.
SAGEMAKER_API_ERRORS: tuple[str, ...] = ("SageMaker.AmazonSageMakerException", "SageMaker.SageMakerException")
# Idempotent calls (S3 copies and listings, SNS publishes) retry on any error: a retry costs nothing.
ANY_ERROR: tuple[str, ...] = ("States.ALL",)


# A JSON number's exponent with leading zeros (Python writes 1e-05): valid JSON, but some ASL parsers (moto's, which
# the tests run the definition in) reject it, so the definition is written with 1e-5.
_EXPONENT_ZEROS = re.compile(r"(?<=[\s:\[,])(-?\d+(?:\.\d+)?[eE][+-]?)0+(?=\d)")


def to_json(definition: dict[str, Any]) -> str:
    """The definition as JSON text, numbers written without exponent padding."""
    return _EXPONENT_ZEROS.sub(r"\1", json.dumps(definition, indent=2))


def retry(errors: tuple[str, ...], *, interval: int = 5, attempts: int = 4, backoff: float = 2.0) -> State:
    """A retrier with exponential backoff and full jitter."""
    return {
        "ErrorEquals": list(errors),
        "IntervalSeconds": interval,
        "MaxAttempts": attempts,
        "BackoffRate": backoff,
        "JitterStrategy": "FULL",
    }


def task(
    resource: str,
    parameters: dict[str, Any],
    *,
    next_state: str | None,
    result_path: str | None,
    retriers: list[State],
    catch: str | None,
    catch_result_path: str = ERROR_PATH,
    result_selector: dict[str, Any] | None = None,
) -> State:
    """A Task state.

    Args:
        next_state: the next state, or None to end the (map item's) workflow here.
        catch: the state every error goes to; None only inside the copy map, whose failures the map itself catches.
        catch_result_path: where a caught error is kept.
    """
    state: State = {"Type": "Task", "Resource": resource, "Parameters": parameters}
    if result_selector is not None:
        state["ResultSelector"] = result_selector
    state["ResultPath"] = result_path
    state["Retry"] = retriers
    if catch is not None:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": catch_result_path, "Next": catch}]
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def sagemaker_task(
    action: str, parameters: dict[str, Any], *, next_state: str, result_path: str | None, catch: str
) -> State:
    """An optimised SageMaker integration (``action`` like ``createModel`` or ``createTrainingJob.sync``)."""
    return task(
        f"arn:aws:states:::sagemaker:{action}",
        parameters,
        next_state=next_state,
        result_path=result_path,
        retriers=[retry(SAGEMAKER_API_ERRORS)],
        catch=catch,
    )


def sdk_task(service_action: str, parameters: dict[str, Any], **kwargs: Any) -> State:
    """An AWS SDK integration (``service_action`` like ``s3:copyObject``)."""
    return task(f"arn:aws:states:::aws-sdk:{service_action}", parameters, **kwargs)


def pass_state(
    next_state: str, *, parameters: dict[str, Any] | None = None, result: Any = None, result_path: str | None = "$"
) -> State:
    """A Pass state that writes ``parameters`` (evaluated) or ``result`` (literal) at ``result_path``."""
    state: State = {"Type": "Pass"}
    if parameters is not None:
        state["Parameters"] = parameters
    if result is not None:
        state["Result"] = result
    state["ResultPath"] = result_path
    state["Next"] = next_state
    return state


def error_state(error: str, cause_format: str, *cause_args: str, next_state: str) -> State:
    """A Pass state that records a failure at ``$.error`` the way a Catch would, with a formatted cause."""
    return pass_state(
        next_state,
        parameters={"Error": error, "Cause.$": format_string(cause_format, *cause_args)},
        result_path=ERROR_PATH,
    )


def format_string(template: str, *args: str) -> str:
    """``States.Format('<template>', args...)`` as a ``.$`` value; ``{}`` in the template are the placeholders.

    Templates may not hold quotes or backslashes: escaping them inside intrinsic functions is not handled alike by
    every ASL implementation (moto's parser, which the tests use, mis-reads ``\\'``).
    """
    if "'" in template or "\\" in template:
        raise ValueError(f"no quotes or backslashes in intrinsic string literals: {template!r}")
    return f"States.Format('{template}'{''.join(f', {arg}' for arg in args)})"
