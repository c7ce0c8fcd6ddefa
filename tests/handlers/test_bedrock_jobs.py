"""Bedrock calls: idempotent starts, error classification by kind, throughput purchase."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune.bedrock_jobs import (
    JobRequest,
    create_throughput,
    describe_job,
    describe_throughput,
    start_job,
)
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


@pytest.mark.parametrize(("code", "status", "expected"), _KINDS)
def test_throughput_errors_are_classified_by_kind(
    stubbed: tuple[Any, Stubber], code: str, status: int, expected: type[Exception]
) -> None:
    client, stubber = stubbed
    names = _request().names
    stubber.add_client_error(
        "get_provisioned_model_throughput", "ResourceNotFoundException", http_status_code=404
    )
    stubber.add_client_error("create_provisioned_model_throughput", code, http_status_code=status)
    with pytest.raises(expected):
        create_throughput(client, names=names, model_arn=MODEL_ARN, model_units=1, commitment=None, tags={})
    stubber.add_client_error("get_provisioned_model_throughput", code, http_status_code=status)
    with pytest.raises(expected):
        describe_throughput(client, PT_ARN)


def test_quota_error_on_throughput_says_to_ask_aws_support(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "get_provisioned_model_throughput", "ResourceNotFoundException", http_status_code=404
    )
    stubber.add_client_error(
        "create_provisioned_model_throughput",
        "ServiceQuotaExceededException",
        service_message="Your account does not currently have any no commitment model units reserved",
        http_status_code=400,
    )
    with pytest.raises(BedrockQuotaExceeded, match="must be requested from AWS Support"):
        create_throughput(
            client, names=_request().names, model_arn=MODEL_ARN, model_units=1, commitment=None, tags={}
        )


def test_create_throughput_sends_units_commitment_token_and_tags(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    names = _request().names
    stubber.add_client_error(
        "get_provisioned_model_throughput", "ResourceNotFoundException", http_status_code=404
    )
    stubber.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        expected_params={
            "modelUnits": 2,
            "provisionedModelName": names.provisioned_model_name,
            "modelId": MODEL_ARN,
            "clientRequestToken": names.throughput_token,
            "commitmentDuration": "OneMonth",
            "tags": [{"key": "finetune:run", "value": "run-1"}],
        },
    )
    result = create_throughput(
        client,
        names=names,
        model_arn=MODEL_ARN,
        model_units=2,
        commitment="OneMonth",
        tags={"finetune:run": "run-1"},
    )
    assert result == {
        "provisionedModelArn": PT_ARN,
        "provisionedModelName": names.provisioned_model_name,
        "reused": False,
        "commitment": "OneMonth",
    }


def _pt(status: str, commitment: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": "ft-run-1-pt",
        "provisionedModelArn": PT_ARN,
        "modelArn": MODEL_ARN,
        "desiredModelArn": MODEL_ARN,
        "foundationModelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{HAIKU}",
        "status": status,
        "creationTime": "2026-11-22T00:00:00Z",
        "lastModifiedTime": "2026-11-22T00:00:00Z",
    }
    if commitment:
        response["commitmentDuration"] = commitment
    return response


def test_a_retried_create_throughput_reuses_the_existing_one(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt("Creating"))
    result = create_throughput(
        client, names=_request().names, model_arn=MODEL_ARN, model_units=1, commitment=None, tags={}
    )
    assert result["reused"] is True
    assert result["provisionedModelArn"] == PT_ARN


def test_describe_throughput_reports_status_and_failure(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", {**_pt("Failed"), "failureMessage": "capacity"})
    assert describe_throughput(client, PT_ARN) == {
        "provisionedModelArn": PT_ARN,
        "provisionedModelName": "ft-run-1-pt",
        "status": "Failed",
        "failureMessage": "capacity",
        "modelUnits": 1,
        "commitment": "none",
    }
