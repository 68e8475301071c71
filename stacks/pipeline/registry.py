"""The training pipeline's model registry states (docs/design.md §10): register every trained model, then deploy it.

    QualityGate passes  -> ChooseApproval -> ApproveModel (auto) | AwaitApproval (manual) -> RegisterModel
    QualityGate refuses -> RejectModel[WithoutAccuracy]                                   -> RegisterModel
    RegisterModel -> CheckRegistration -> RecordApproval (approved/rejected: why, in ApprovalDescription)
                                        | PendingApproval -> summary and notification, end (a person decides)
    RecordApproval -> StartDeployment (approved: the deployment state machine, waited for) | NotifyFailure

A package records the inference image, the artifact and the serving environment (so the deployment builds the model
from the package alone), the final job's output archive as model-quality metrics (evaluation.json, diagnostics.json
and report.html are in it), and as metadata the test accuracy, job names, data manifest and the approval mode
(``approval``: the EventBridge rule deploys only packages a person approved, auto-approved ones the pipeline deploys).
"""

from __future__ import annotations

from typing import Any

from stacks.pipeline import deploy, requests
from stacks.pipeline.asl import (
    DATA_BUCKET,
    ERROR_PATH,
    SAGEMAKER_API_ERRORS,
    State,
    error_state,
    format_string,
    pass_state,
    retry,
    sdk_task,
    task,
)
from stacks.storage import MANIFEST_KEY

DEPLOY_STATE_MACHINE_ARN = "${DeployStateMachineArn}"

CHOOSE_APPROVAL = "ChooseApproval"
APPROVE_MODEL = "ApproveModel"
AWAIT_APPROVAL = "AwaitApproval"
REJECT_MODEL = "RejectModel"
REJECT_MODEL_WITHOUT_ACCURACY = "RejectModelWithoutAccuracy"
REGISTER_MODEL = "RegisterModel"
CHECK_REGISTRATION = "CheckRegistration"
RECORD_APPROVAL = "RecordApproval"
CHECK_APPROVAL = "CheckApproval"
PENDING_APPROVAL = "PendingApproval"
START_DEPLOYMENT = "StartDeployment"
READ_DEPLOYMENT_FAILURE = "ReadDeploymentFailure"
DEPLOYMENT_FAILED = "DeploymentFailed"

DEPLOYMENT_FAILED_ERROR = "DeploymentFailed"
APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"
APPROVAL_METADATA_KEY = "approval"
CONTENT_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "application/x-image")
RESPONSE_TYPES: tuple[str, ...] = ("application/json",)
REGISTRATION_PATH = "$.registration"


def _registration(status: str, *, description: str, accuracy: str) -> dict[str, Any]:
    """``$.registration``: the status to register with, why (a JSONPath or a literal) and the test accuracy (an
    intrinsic or a literal)."""
    described = (
        {"description.$": description} if description.startswith(("$", "States.")) else {"description": description}
    )
    measured = {"testAccuracy.$": accuracy} if accuracy.startswith("States.") else {"testAccuracy": accuracy}
    return {"status": status, **described, **measured}


def model_package(group: str, ctx: requests.RequestContext) -> dict[str, Any]:
    """CreateModelPackage: this run's model, versioned in ``group`` with the status ``$.registration`` holds."""
    archive = format_string(*requests.training_output_archive())
    container = requests.model(ctx)["PrimaryContainer"]
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription.$": format_string(
            "Training job {}, tuning job {}, execution {}",
            "$.run.trainingJobName",
            "$.run.tuningJobName",
            "$$.Execution.Name",
        ),
        "ModelApprovalStatus.$": f"{REGISTRATION_PATH}.status",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image.$": container["Image.$"],
                    "ModelDataUrl.$": container["ModelDataUrl.$"],
                    "Environment": container["Environment"],
                }
            ],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
            "SupportedRealtimeInferenceInstanceTypes.$": "States.Array($.config.endpointInstanceType)",
        },
        # evaluation.json (accuracy, confusion matrix...), diagnostics.json and report.html travel in the final
        # job's output archive; SageMaker keeps no other copy of them.
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/gzip", "S3Uri.$": archive}}},
        "MetadataProperties": {"GeneratedBy.$": "$$.Execution.Id"},
        "CustomerMetadataProperties": {
            APPROVAL_METADATA_KEY + ".$": "$.config.approval",
            "testAccuracy.$": f"{REGISTRATION_PATH}.testAccuracy",
            "accuracyFloor.$": "States.Format('{}', $.config.accuracyFloor)",
            "trainingJobName.$": "$.run.trainingJobName",
            "tuningJobName.$": "$.run.tuningJobName",
            "dataManifest": f"s3://{DATA_BUCKET}/{MANIFEST_KEY}",
            "trainingReport.$": archive,
        },
        "Tags": [{"Key": requests.RUN_TAG, "Value.$": requests.RUN_ID_PATH}],
    }


def registry_states(
    *, group: str, ctx: requests.RequestContext, test_accuracy_path: str, notify_failure: str, summarize: str
) -> dict[str, State]:
    """Register the model with its approval, then deploy it (approved), stop (rejected) or wait (manual)."""
    accuracy = f"States.Format('{{}}', {test_accuracy_path})"
    deployment_input: dict[str, Any] = {
        "modelPackageArn.$": f"{REGISTRATION_PATH}.package.arn",
        "notify": False,  # this pipeline reports the outcome
        **{f"{key}.$": f"$.config.{key}" for key in deploy.DEPLOY_SETTINGS},
        "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
    }
    return {
        CHOOSE_APPROVAL: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.config.approval", "StringEquals": "manual", "Next": AWAIT_APPROVAL}],
            "Default": APPROVE_MODEL,
        },
        APPROVE_MODEL: pass_state(
            REGISTER_MODEL,
            parameters=_registration(
                APPROVED,
                description=format_string(
                    "Quality gate passed: test accuracy {} >= accuracy floor {} (approval auto).",
                    test_accuracy_path,
                    "$.gate.accuracyFloor",
                ),
                accuracy=accuracy,
            ),
            result_path=REGISTRATION_PATH,
        ),
        AWAIT_APPROVAL: pass_state(
            REGISTER_MODEL,
            parameters=_registration(
                PENDING, description="Quality gate passed; approval manual: a person decides.", accuracy=accuracy
            ),
            result_path=REGISTRATION_PATH,
        ),
        # The gate's refusals: registered Rejected, the cause as the approval's description.
        REJECT_MODEL: pass_state(
            REGISTER_MODEL,
            parameters=_registration(REJECTED, description=f"{ERROR_PATH}.Cause", accuracy=accuracy),
            result_path=REGISTRATION_PATH,
        ),
        REJECT_MODEL_WITHOUT_ACCURACY: pass_state(
            REGISTER_MODEL,
            parameters=_registration(REJECTED, description=f"{ERROR_PATH}.Cause", accuracy="not reported"),
            result_path=REGISTRATION_PATH,
        ),
        REGISTER_MODEL: sdk_task(
            "sagemaker:createModelPackage",
            model_package(group, ctx),
            result_selector={"arn.$": "$.ModelPackageArn"},
            result_path=f"{REGISTRATION_PATH}.package",
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=notify_failure,
            next_state=CHECK_REGISTRATION,
        ),
        CHECK_REGISTRATION: {
            "Type": "Choice",
            "Choices": [{"Variable": f"{REGISTRATION_PATH}.status", "StringEquals": PENDING, "Next": PENDING_APPROVAL}],
            "Default": RECORD_APPROVAL,
        },
        RECORD_APPROVAL: sdk_task(
            "sagemaker:updateModelPackage",
            {
                "ModelPackageArn.$": f"{REGISTRATION_PATH}.package.arn",
                "ModelApprovalStatus.$": f"{REGISTRATION_PATH}.status",
                "ApprovalDescription.$": f"{REGISTRATION_PATH}.description",
            },
            result_path=None,
            retriers=[retry(SAGEMAKER_API_ERRORS)],
            catch=notify_failure,
            next_state=CHECK_APPROVAL,
        ),
        CHECK_APPROVAL: {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"{REGISTRATION_PATH}.status", "StringEquals": APPROVED, "Next": START_DEPLOYMENT}
            ],
            "Default": notify_failure,  # rejected: $.error holds the gate's cause
        },
        PENDING_APPROVAL: pass_state(
            summarize,
            parameters={
                "status": "PENDING_MANUAL_APPROVAL",
                "subject": "model registered, waiting for approval",
                "approveCommand.$": format_string(
                    "aws sagemaker update-model-package --model-package-arn {} --model-approval-status Approved",
                    f"{REGISTRATION_PATH}.package.arn",
                ),
            },
            result_path="$.outcome",
        ),
        START_DEPLOYMENT: task(
            "arn:aws:states:::states:startExecution.sync:2",
            {
                "StateMachineArn": DEPLOY_STATE_MACHINE_ARN,
                "Name.$": "$.run.deploymentName",
                "Input": deployment_input,
            },
            result_selector={
                "status": "DEPLOYED",
                "subject": "new model deployed",
                "deploymentExecution.$": "$.ExecutionArn",
                "deployment.$": "$.Output",
            },
            result_path="$.outcome",
            # The execution is named per run, so a retried start is idempotent (same name and input).
            retriers=[retry(("StepFunctions.ExecutionLimitExceededException",))],
            catch=None,
            next_state=summarize,
        )
        | {
            "Catch": [
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": ERROR_PATH, "Next": READ_DEPLOYMENT_FAILURE},
                {"ErrorEquals": ["States.ALL"], "ResultPath": ERROR_PATH, "Next": notify_failure},
            ]
        },
        # .sync:2 fails with States.TaskFailed and the child's DescribeExecution output as the cause.
        READ_DEPLOYMENT_FAILURE: pass_state(
            DEPLOYMENT_FAILED,
            parameters={"execution.$": f"States.StringToJson({ERROR_PATH}.Cause)"},
            result_path="$.deploymentFailure",
        ),
        DEPLOYMENT_FAILED: error_state(
            DEPLOYMENT_FAILED_ERROR,
            "Model package {} was approved but its deployment {} failed: {}: {}",
            f"{REGISTRATION_PATH}.package.arn",
            "$.deploymentFailure.execution.ExecutionArn",
            "$.deploymentFailure.execution.Error",
            "$.deploymentFailure.execution.Cause",
            next_state=notify_failure,
        ),
    }
