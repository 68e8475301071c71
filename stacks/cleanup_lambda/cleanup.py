"""CloudFormation custom resource: on stack delete, remove what the pipeline created and what still bills.

The state machine creates SageMaker resources CloudFormation does not know about. When the stack is deleted this
handler, which CloudFormation deletes before the state machine and the roles (it depends on them), in order:

1. stops the pipeline's and the deployments' running executions (a stopped ``.sync`` task stops its job);
2. stops the ``<prefix>-hpo-*`` tuning jobs and ``<prefix>-*`` training jobs still in progress;
3. deregisters the endpoint's variant from Application Auto Scaling (which deletes its scaling policy and alarms);
4. deletes the endpoint (waiting while it is Creating or Updating, which DeleteEndpoint refuses), its log group,
   and every ``<prefix>-config-*`` endpoint config and ``<prefix>-model-*`` model;
5. deletes every version of the model package group, so that CloudFormation can delete the group (it refuses a
   group that holds versions) and a later deploy can create it again.

Create and Update do nothing. Standard library and boto3 only (the Lambda runtime's), no cfnresponse.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

# The Lambda runtime's root handler prints what this logger passes on.
log = logging.getLogger("cleanup")
log.setLevel(logging.INFO)

BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
WAIT_SECONDS = 20
# Leave time to answer CloudFormation before the Lambda's 15-minute limit.
MAX_WAIT_SECONDS = 12 * 60


def send_response(event: dict[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT the custom resource result to CloudFormation's pre-signed URL."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        log.info("CloudFormation answered %s", response.status)


def _pages(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _missing(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    return code in {"ValidationException", "ResourceNotFound", "ResourceNotFoundException"} and (
        "not find" in message.lower() or "not found" in message.lower() or "does not exist" in message.lower()
    )


def _stop(call: Callable[..., Any], **kwargs: Any) -> bool:
    """Call a Stop API; False when the thing already finished or is stopping (nothing left to stop)."""
    try:
        call(**kwargs)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"ValidationException", "ExecutionDoesNotExist"}:
            log.info("not stopped (%s): %s", kwargs, e)
            return False
        raise
    return True


def stop_executions(sfn: Any, state_machine_arn: str) -> list[str]:
    """Stop every running execution of the pipeline; returns their ARNs (none when the state machine is gone)."""
    stopped = []
    try:
        running = list(
            _pages(sfn.list_executions, "executions", stateMachineArn=state_machine_arn, statusFilter="RUNNING")
        )
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "StateMachineDoesNotExist":
            return stopped
        raise
    for execution in running:
        arn = execution["executionArn"]
        if _stop(sfn.stop_execution, executionArn=arn, cause="stack deleted (cdk destroy)"):
            stopped.append(arn)
    return stopped


def stop_jobs(sagemaker: Any, prefix: str) -> list[str]:
    """Stop the prefix's tuning and training jobs still in progress; returns their names."""
    stopped = []
    for job in _pages(
        sagemaker.list_hyper_parameter_tuning_jobs,
        "HyperParameterTuningJobSummaries",
        NameContains=f"{prefix}-",
        StatusEquals="InProgress",
    ):
        name = job["HyperParameterTuningJobName"]
        if name.startswith(f"{prefix}-hpo-") and _stop(
            sagemaker.stop_hyper_parameter_tuning_job, HyperParameterTuningJobName=name
        ):
            stopped.append(name)
    for job in _pages(
        sagemaker.list_training_jobs, "TrainingJobSummaries", NameContains=f"{prefix}-", StatusEquals="InProgress"
    ):
        name = job["TrainingJobName"]
        if name.startswith(f"{prefix}-") and _stop(sagemaker.stop_training_job, TrainingJobName=name):
            stopped.append(name)
    return stopped


def delete_endpoint(sagemaker: Any, name: str, *, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Delete the endpoint once it is not busy; False when there was none."""
    waited = 0.0
    while True:
        try:
            status = sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]
        except ClientError as e:
            if _missing(e):
                return False
            raise
        if status == "Deleting":
            return True
        if status not in BUSY_STATUSES:
            break
        if waited >= MAX_WAIT_SECONDS:
            raise TimeoutError(f"endpoint {name} stayed {status} for {waited:.0f} s; delete it by hand")
        log.info("endpoint %s is %s; waiting", name, status)
        sleep(WAIT_SECONDS)
        waited += WAIT_SECONDS
    sagemaker.delete_endpoint(EndpointName=name)
    return True


def delete_named(sagemaker: Any, prefix: str) -> list[str]:
    """Delete the prefix's endpoint configs and models; returns their names."""
    deleted = []
    for config in _pages(sagemaker.list_endpoint_configs, "EndpointConfigs", NameContains=f"{prefix}-config-"):
        name = config["EndpointConfigName"]
        if name.startswith(f"{prefix}-config-"):
            sagemaker.delete_endpoint_config(EndpointConfigName=name)
            deleted.append(name)
    for model in _pages(sagemaker.list_models, "Models", NameContains=f"{prefix}-model-"):
        name = model["ModelName"]
        if name.startswith(f"{prefix}-model-"):
            sagemaker.delete_model(ModelName=name)
            deleted.append(name)
    return deleted


def deregister_autoscaling(autoscaling: Any, resource_id: str, dimension: str) -> bool:
    """Deregister the endpoint's variant as a scalable target; False when it was not registered."""
    found = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource_id], ScalableDimension=dimension
    )["ScalableTargets"]
    if not found:
        return False
    autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource_id, ScalableDimension=dimension
    )
    return True


def delete_model_versions(sagemaker: Any, group: str) -> list[str]:
    """Delete every version of the model package group; returns their ARNs (none when the group is gone)."""
    try:
        versions = [
            p["ModelPackageArn"]
            for p in _pages(sagemaker.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=group)
        ]
    except ClientError as e:
        if _missing(e):
            return []
        raise
    for arn in versions:
        sagemaker.delete_model_package(ModelPackageName=arn)
    return versions


def delete_log_group(logs: Any, name: str) -> bool:
    try:
        logs.delete_log_group(logGroupName=name)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise
    return True


def clean_up(
    properties: dict[str, Any],
    *,
    sagemaker: Any,
    sfn: Any,
    logs: Any,
    autoscaling: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[str]]:
    """Everything a stack delete must remove; returns what it did, by kind."""
    prefix = properties["NamePrefix"]
    endpoint = properties["EndpointName"]
    target = properties["ScalableTargetId"]
    done: dict[str, list[str]] = {
        "executions": stop_executions(sfn, properties["StateMachineArn"])
        + stop_executions(sfn, properties["DeployStateMachineArn"]),
        "jobs": stop_jobs(sagemaker, prefix),
        "autoscaling": [target] if deregister_autoscaling(autoscaling, target, properties["ScalableDimension"]) else [],
        "endpoint": [endpoint] if delete_endpoint(sagemaker, endpoint, sleep=sleep) else [],
    }
    done["configsAndModels"] = delete_named(sagemaker, prefix)
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    done["logGroups"] = [log_group] if delete_log_group(logs, log_group) else []
    done["modelVersions"] = delete_model_versions(sagemaker, properties["ModelPackageGroupName"])
    return done


def handler(event: dict[str, Any], context: Any) -> None:
    """Custom resource entry point."""
    log.info("%s request for %s", event["RequestType"], event["LogicalResourceId"])
    properties = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or f"{properties['NamePrefix']}-cleanup"
    status, reason = "SUCCESS", "nothing to do"
    try:
        if event["RequestType"] == "Delete":
            done = clean_up(
                properties,
                sagemaker=boto3.client("sagemaker"),
                sfn=boto3.client("stepfunctions"),
                logs=boto3.client("logs"),
                autoscaling=boto3.client("application-autoscaling"),
            )
            reason = json.dumps(done)
            log.info("cleaned up: %s", reason)
    except Exception as e:  # report any failure to CloudFormation instead of letting it wait an hour
        log.exception("cleanup failed")
        status, reason = "FAILED", f"cleanup failed: {type(e).__name__}: {e}"
    send_response(event, status, reason, physical_id)
