"""Bedrock calls: idempotent job starts, error classification by kind (serving: test_serving.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune.bedrock_jobs import JobRequest, describe_job, start_job
from bedrock_finetune.errors import BedrockPermanentError, BedrockQuotaExceeded, BedrockTransientError
from bedrock_finetune.naming import RunIdentity, names_for

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
ROLE = "arn:aws:iam::123456789012:role/service-role"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdefghijkl"
BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
MODEL_ARN = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/abcdefghijkl"
JOB_ARN = f"arn:aws:bedrock:us-west-2:123456789012:model-customization-job/{BASE}/abcdefghijkl"


def _request(version: str = "v1") -> JobRequest:
    identity = RunIdentity(bucket="bucket", key="datasets/run-1/train.jsonl", version_id=version, etag=None)
    return JobRequest(
        names=names_for("run-1", identity),
        role_arn=ROLE,
        base_model_id=HAIKU,
        training_uri="s3://bucket/datasets/run-1/train.jsonl",
        validation_uri="s3://bucket/datasets/run-1/validation.jsonl",
        output_uri="s3://bucket/outputs/run-1/",
        hyperparameters={"epochCount": "2"},
        kms_key_arn=None,
        tags={"finetune:run": "run-1"},
    )


@pytest.fixture
def bedrock(aws: None) -> Any:
    return boto3.client("bedrock", region_name="us-west-2")


def test_start_job_creates_the_job_with_deterministic_names(bedrock: Any) -> None:
    # Given a run never started before
    request = _request()
    # When the job is started
    result = start_job(bedrock, request)
    # Then a job exists under the run's deterministic name, with its URIs and hyperparameters
    assert result["reused"] is False
    job = bedrock.get_model_customization_job(jobIdentifier=request.names.job_name)
    assert job["jobArn"] == result["jobArn"]
    # moto 5.2.5 appends the job name to outputModelName; Bedrock returns the requested name.
    assert job["outputModelName"].startswith(request.names.custom_model_name)
    assert job["trainingDataConfig"]["s3Uri"] == "s3://bucket/datasets/run-1/train.jsonl"
    assert job["hyperParameters"] == {"epochCount": "2"}


def test_a_retried_or_duplicate_start_reuses_the_existing_job(bedrock: Any) -> None:
    # Given the job was started by a first attempt
    first = start_job(bedrock, _request())
    # When a Lambda retry or a duplicate event starts the same upload again
    second = start_job(bedrock, _request())
    # Then it finds the first job and creates no other
    assert second == {**first, "reused": True}
    assert len(bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]) == 1


def test_a_new_version_of_the_upload_starts_a_new_job(bedrock: Any) -> None:
    first = start_job(bedrock, _request("v1"))
    second = start_job(bedrock, _request("v2"))
    assert first["jobName"] != second["jobName"]
    assert len(bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]) == 2


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock", region_name="us-west-2")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


_KINDS = [
    ("ThrottlingException", 429, BedrockTransientError),
    ("InternalServerException", 500, BedrockTransientError),
    ("ServiceUnavailableException", 503, BedrockTransientError),
    ("ValidationException", 400, BedrockPermanentError),
    ("AccessDeniedException", 403, BedrockPermanentError),
    ("ResourceNotFoundException", 404, BedrockPermanentError),
    ("ServiceQuotaExceededException", 400, BedrockQuotaExceeded),
]


@pytest.mark.parametrize(("code", "status", "expected"), _KINDS)
def test_create_job_errors_are_classified_by_kind(
    stubbed: tuple[Any, Stubber], code: str, status: int, expected: type[Exception]
) -> None:
    client, stubber = stubbed
    request = _request()
    stubber.add_client_error(
        "get_model_customization_job",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={"jobIdentifier": request.names.job_name},
    )
    stubber.add_client_error("create_model_customization_job", code, http_status_code=status)
    stubber.add_client_error(
        "get_model_customization_job",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={"jobIdentifier": request.names.job_name},
    )
    with pytest.raises(expected) as caught:
        start_job(client, request)
    assert type(caught.value) is expected
    assert f"CreateModelCustomizationJob: {code}" in str(caught.value)


@pytest.mark.parametrize(("code", "status", "expected"), _KINDS)
def test_get_job_errors_are_classified_by_kind(
    stubbed: tuple[Any, Stubber], code: str, status: int, expected: type[Exception]
) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_model_customization_job", code, http_status_code=status)
    with pytest.raises(expected):
        describe_job(client, JOB_ARN)
