"""Bedrock calls of the pipeline: start and follow a customization job, buy and follow throughput.

Plain functions that take a boto3 ``bedrock`` client, so tests pass moto or a Stubber. Creation is
idempotent: each create first looks for what a previous attempt of the same run made (by its
deterministic name) and passes a deterministic ``clientRequestToken``. botocore errors are turned
into the typed ``Bedrock*`` errors through the one table of :mod:`bedrock_finetune.errors`, which
decides whether the state machine retries them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune import errors
from bedrock_finetune.catalog import to_bedrock_hyperparameters
from bedrock_finetune.errors import PipelineError
from bedrock_finetune.lineage import run_tags
from bedrock_finetune.naming import RunNames
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import StartCustomizationJobSettings

JOB_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
THROUGHPUT_TERMINAL = frozenset({"InService", "Failed"})

T = TypeVar("T")


def classify(exc: Exception, action: str) -> PipelineError:
    """A failed Bedrock call of ``action`` as a typed ``Bedrock*`` error (:data:`errors.ERROR_CODES`)."""
    return errors.classify(exc, action, errors.BEDROCK)


def _call(action: str, fn: Callable[..., T], **kwargs: Any) -> T:
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, action) from exc


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def to_bedrock_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Bedrock's TagList shape (lowercase key/value)."""
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


@dataclass(frozen=True)
class JobRequest:
    """Everything needed to start one run's customization job."""

    names: RunNames
    role_arn: str
    base_model_id: str
    training_uri: str
    validation_uri: str | None
    output_uri: str
    hyperparameters: Mapping[str, str]
    kms_key_arn: str | None
    tags: Mapping[str, str]


def _find(action: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any] | None:
    """A Get call that answers None when the resource does not exist."""
    try:
        return dict(call(**kwargs))
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise classify(exc, action) from exc
    except BotoCoreError as exc:
        raise classify(exc, action) from exc


def find_job(bedrock: Any, job_identifier: str) -> dict[str, Any] | None:
    """GetModelCustomizationJob, or None when no such job exists."""
    return _find(
        "GetModelCustomizationJob", bedrock.get_model_customization_job, jobIdentifier=job_identifier
    )


def start_job(bedrock: Any, request: JobRequest) -> dict[str, Any]:
    """Start the run's job, or return the one a previous attempt already started.

    Returns ``{"jobArn", "jobName", "customModelName", "reused"}``.
    """
    names = request.names

    def started(job_arn: str, reused: bool) -> dict[str, Any]:
        return {
            "jobArn": job_arn,
            "jobName": names.job_name,
            "customModelName": names.custom_model_name,
            "reused": reused,
        }

    existing = find_job(bedrock, names.job_name)
    if existing is not None:
        return started(existing["jobArn"], reused=True)
    params: dict[str, Any] = {
        "jobName": names.job_name,
        "customModelName": names.custom_model_name,
        "roleArn": request.role_arn,
        "baseModelIdentifier": request.base_model_id,
        "customizationType": "FINE_TUNING",
        "clientRequestToken": names.job_token,
        "trainingDataConfig": {"s3Uri": request.training_uri},
        "outputDataConfig": {"s3Uri": request.output_uri},
        "hyperParameters": dict(request.hyperparameters),
        "jobTags": to_bedrock_tags(request.tags),
        "customModelTags": to_bedrock_tags(request.tags),
    }
    if request.validation_uri:
        params["validationDataConfig"] = {"validators": [{"s3Uri": request.validation_uri}]}
    if request.kms_key_arn:
        params["customModelKmsKeyId"] = request.kms_key_arn
    try:
        response = bedrock.create_model_customization_job(**params)
    except ClientError as exc:
        # A concurrent attempt may have created it between our lookup and create.
        raced = find_job(bedrock, names.job_name)
        if raced is not None:
            return started(raced["jobArn"], reused=True)
        raise classify(exc, "CreateModelCustomizationJob") from exc
    except BotoCoreError as exc:
        raise classify(exc, "CreateModelCustomizationJob") from exc
    return started(response["jobArn"], reused=False)


def describe_job(bedrock: Any, job_identifier: str) -> dict[str, Any]:
    """The job's status in a small, state-machine-friendly shape (every key always present)."""
    job = _call("GetModelCustomizationJob", bedrock.get_model_customization_job, jobIdentifier=job_identifier)
    validation = job.get("validationMetrics") or []
    return {
        "jobArn": job["jobArn"],
        "jobName": job.get("jobName", ""),
        "status": job.get("status", "InProgress"),
        "failureMessage": job.get("failureMessage", ""),
        "outputModelArn": job.get("outputModelArn", ""),
        "outputModelName": job.get("outputModelName", ""),
        "trainingLoss": (job.get("trainingMetrics") or {}).get("trainingLoss"),
        "validationLoss": validation[0].get("validationLoss") if validation else None,
        "endTime": str(job["endTime"]) if job.get("endTime") else None,
    }


def find_throughput(bedrock: Any, provisioned_model_id: str) -> dict[str, Any] | None:
    """GetProvisionedModelThroughput, or None when it does not exist."""
    return _find(
        "GetProvisionedModelThroughput",
        bedrock.get_provisioned_model_throughput,
        provisionedModelId=provisioned_model_id,
    )


# ---- the pipeline tasks that start or buy something ----


def start_customization_job(
    bedrock: Any,
    run: RunRef,
    validation: Mapping[str, Any],
    execution_arn: str,
    settings: StartCustomizationJobSettings,
) -> dict[str, Any]:
    """The StartCustomizationJob task: the run's job from its validated files, tagged with its lineage.

    Returns :func:`start_job`'s result plus the ``hyperparameters`` the job was given.
    """
    location = run.location
    request = JobRequest(
        names=run.names,
        role_arn=settings.service_role_arn,
        base_model_id=settings.base_model_id,
        # The frozen copies of what was validated, never datasets/ (whose files may have changed since).
        training_uri=str(validation["trainingUri"]),
        validation_uri=validation.get("validationUri"),
        output_uri=location.output_uri,
        hyperparameters=to_bedrock_hyperparameters(validation.get("hyperparameters", {})),
        kms_key_arn=settings.custom_model_kms_key_arn,
        tags=run_tags(run, execution_arn, settings),
    )
    return {**start_job(bedrock, request), "hyperparameters": request.hyperparameters}
