"""Clean-up after a failed, aborted or timed-out run: stop the job, delete throughput, keep commitments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.errors import BedrockTransientError
from bedrock_finetune.naming import RunIdentity, line_names, names_for

NAMES = names_for(
    "run-1", RunIdentity(bucket="b", key="datasets/run-1/train.jsonl", version_id="v1", etag=None)
)
LINE = line_names("b", "run-1")
BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
JOB_ARN = f"arn:aws:bedrock:us-west-2:123456789012:model-customization-job/{BASE}/abcdefghijkl"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdefghijkl"
MODEL_ARN = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/abcdefghijkl"


def _job(status: str) -> dict[str, Any]:
    return {
        "jobArn": JOB_ARN,
        "jobName": NAMES.job_name,
        "outputModelName": NAMES.custom_model_name,
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "creationTime": "2026-11-22T00:00:00Z",
        "baseModelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{BASE}",
        "trainingDataConfig": {"s3Uri": "s3://b/datasets/run-1/train.jsonl"},
        "validationDataConfig": {"validators": []},
        "outputDataConfig": {"s3Uri": "s3://b/outputs/run-1/"},
        "status": status,
    }


def _pt(commitment: str | None = None, status: str = "InService") -> dict[str, Any]:
    response: dict[str, Any] = {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": LINE.throughput_name,
        "provisionedModelArn": PT_ARN,
        "modelArn": MODEL_ARN,
        "desiredModelArn": MODEL_ARN,
        "foundationModelArn": "arn:aws:bedrock:us-west-2::foundation-model/x",
        "status": status,
        "creationTime": "2026-11-22T00:00:00Z",
        "lastModifiedTime": "2026-11-22T00:00:00Z",
    }
    if commitment:
        response["commitmentDuration"] = commitment
        response["commitmentExpirationTime"] = "2026-12-22T00:00:00Z"
    return response


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock", region_name="us-west-2")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _not_found(stubber: Stubber, operation: str) -> None:
    stubber.add_client_error(operation, "ResourceNotFoundException", http_status_code=404)


def test_running_job_is_stopped_and_no_throughput_is_touched(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": NAMES.job_name})
    stubber.add_response("stop_model_customization_job", {}, {"jobIdentifier": NAMES.job_name})
    _not_found(stubber, "get_provisioned_model_throughput")
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE)
    assert result["jobStopped"] is True
    assert result["throughputDeleted"] is False
    assert result["summary"] == f"stopped customization job {JOB_ARN}"


def test_throughput_without_commitment_is_deleted(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_model_customization_job", _job("Completed"))
    stubber.add_response(
        "get_provisioned_model_throughput", _pt(), {"provisionedModelId": LINE.throughput_name}
    )
    stubber.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN})
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE)
    assert result == {
        "jobStopped": False,
        "throughputDeleted": True,
        "throughputKept": None,
        "stillBilling": [],
        "settling": False,
        "retry": False,
        "attempt": 1,
        "actions": [f"deleted provisioned throughput {PT_ARN}"],
        "summary": f"deleted provisioned throughput {PT_ARN}",
    }


def test_committed_throughput_is_kept_and_reported(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_model_customization_job", _job("Completed"))
    stubber.add_response("get_provisioned_model_throughput", _pt("OneMonth"))
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(
        client, NAMES, line=LINE
    )  # no delete call is stubbed: making one would fail the test
    assert result["throughputKept"] == PT_ARN
    assert "has a OneMonth commitment and cannot be deleted" in result["summary"]
    assert "it keeps billing" in result["summary"]


def test_nothing_to_clean_is_a_no_op(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    _not_found(stubber, "get_model_customization_job")
    _not_found(stubber, "get_provisioned_model_throughput")
    _not_found(stubber, "get_custom_model_deployment")
    assert (
        clean_up_run(client, NAMES, line=LINE)["summary"]
        == "nothing to clean up (no running job, no endpoint this run created)"
    )


def test_job_already_stopping_is_not_an_error(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_model_customization_job", _job("InProgress"))
    stubber.add_client_error("stop_model_customization_job", "ConflictException", http_status_code=400)
    _not_found(stubber, "get_provisioned_model_throughput")
    _not_found(stubber, "get_custom_model_deployment")
    assert clean_up_run(client, NAMES, line=LINE)["jobStopped"] is True


def test_throttling_during_clean_up_is_retryable(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_model_customization_job", "ThrottlingException", http_status_code=429)
    with pytest.raises(BedrockTransientError):
        clean_up_run(client, NAMES, line=LINE)


EXECUTION = "arn:aws:states:us-west-2:123456789012:execution:Pipeline:exec-1"


def _tags(execution: str) -> dict[str, Any]:
    return {
        "tags": [{"key": "finetune:execution", "value": execution}, {"key": "finetune:run", "value": "run-1"}]
    }


def test_a_creating_throughput_is_not_deleted_yet_and_asks_for_another_attempt(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Given a throughput still Creating (Bedrock refuses deletion), then nothing is deleted, the result
    asks to be called again and names it as still billing, with the exact command."""
    client, stubber = stubbed
    _not_found(stubber, "get_model_customization_job")
    stubber.add_response("get_provisioned_model_throughput", _pt(status="Creating"))
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": PT_ARN})
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": MODEL_ARN})
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(
        client, NAMES, line=LINE, execution_arn=EXECUTION, previous={"attempt": 0}, max_attempts=3
    )
    assert (result["throughputDeleted"], result["settling"], result["retry"], result["attempt"]) == (
        False,
        True,
        True,
        1,
    )
    (billing,) = result["stillBilling"]
    assert billing["arn"] == PT_ARN and billing["status"] == "Creating"
    assert billing["deleteCommand"] == (
        f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {PT_ARN} --region us-west-2"
    )


def test_the_last_attempt_stops_asking_but_still_names_what_bills(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    _not_found(stubber, "get_model_customization_job")
    stubber.add_response("get_provisioned_model_throughput", _pt(status="Creating"))
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE, previous={"attempt": 2}, max_attempts=3)
    assert result["retry"] is False and result["settling"] is True
    assert result["stillBilling"][0]["arn"] == PT_ARN


def test_a_conflict_on_delete_is_settling_not_an_error(stubbed: tuple[Any, Stubber]) -> None:
    """Bedrock answers ConflictException while a throughput is Creating or Updating."""
    client, stubber = stubbed
    _not_found(stubber, "get_model_customization_job")
    stubber.add_response("get_provisioned_model_throughput", _pt())
    stubber.add_client_error("delete_provisioned_model_throughput", "ConflictException", http_status_code=400)
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE, previous={"attempt": 0}, max_attempts=2)
    assert result["settling"] is True and result["retry"] is True
    assert result["throughputDeleted"] is False


def test_what_another_execution_created_is_left_to_it(stubbed: tuple[Any, Stubber]) -> None:
    """Given a duplicate execution (same upload) that reused the original's job and throughput, when the
    duplicate is aborted, then the original's running job and in-service throughput are left alone."""
    client, stubber = stubbed
    original = "arn:aws:states:us-west-2:123456789012:execution:Pipeline:original"
    stubber.add_response("get_model_customization_job", _job("InProgress"))
    stubber.add_response("list_tags_for_resource", _tags(original), {"resourceARN": JOB_ARN})
    stubber.add_response("get_provisioned_model_throughput", _pt())
    stubber.add_response("list_tags_for_resource", _tags(original), {"resourceARN": PT_ARN})
    # No stop or delete call is stubbed: making one would fail the test.
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE, execution_arn=EXECUTION)
    assert (result["jobStopped"], result["throughputDeleted"], result["stillBilling"]) == (False, False, [])
    assert f"created by execution {original}" in result["summary"]


def test_a_throughput_this_execution_created_but_now_serving_a_later_version_is_left_serving(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Given this execution created the line's throughput, and a later version of the line (another
    execution) put its model behind it, when this execution is cleaned up, then the throughput is not
    deleted: it serves the later version, and the summary says why."""
    client, stubber = stubbed
    later = "arn:aws:states:us-west-2:123456789012:execution:Pipeline:later"
    later_model = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/latermodel01"
    _not_found(stubber, "get_model_customization_job")
    stubber.add_response(
        "get_provisioned_model_throughput", {**_pt(status="Updating"), "desiredModelArn": later_model}
    )
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": PT_ARN})
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": MODEL_ARN})
    stubber.add_response("list_tags_for_resource", _tags(later), {"resourceARN": later_model})
    # No delete call is stubbed: making one would fail the test.
    _not_found(stubber, "get_custom_model_deployment")
    result = clean_up_run(client, NAMES, line=LINE, execution_arn=EXECUTION)
    assert (result["throughputDeleted"], result["stillBilling"]) == (False, [])
    assert (
        f"{later_model}, which execution {later} trained; it is left serving that version"
        in result["summary"]
    )


def test_a_throughput_bought_after_the_abort_is_found_by_the_second_look(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Given an abort that races an in-flight "Create provisioned throughput" (the first look finds
    nothing, the throughput appears afterwards), then the ended-execution clean-up looks again after
    one wait and deletes it."""
    from bedrock_finetune.ended_execution import clean_up_ended_execution
    from bedrock_finetune.run_ref import RunRef
    from bedrock_finetune.settings import CleanUpSettings

    client, stubber = stubbed
    run = RunRef(bucket="b", key="datasets/run-1/train.jsonl", run="run-1", version_id="v1")
    detail = {"executionArn": EXECUTION, "status": "ABORTED"}
    settings = CleanUpSettings(max_attempts=25)
    # First look: nothing yet (the create call is still in flight).
    _not_found(stubber, "get_model_customization_job")
    _not_found(stubber, "get_provisioned_model_throughput")
    _not_found(stubber, "get_custom_model_deployment")
    _not_found(stubber, "get_custom_model_deployment")  # the candidate's evaluation deployment
    first = clean_up_ended_execution(
        client, lambda arn: [], settings, run=run, detail=detail, previous={"attempt": 0}
    )
    assert (first["attempt"], first["retry"], first["stillBilling"]) == (1, True, [])
    # Second look, after the wait: the throughput exists now, made by this execution.
    _not_found(stubber, "get_model_customization_job")
    stubber.add_response("get_provisioned_model_throughput", _pt())
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": PT_ARN})
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": MODEL_ARN})
    stubber.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT_ARN})
    _not_found(stubber, "get_custom_model_deployment")
    _not_found(stubber, "get_custom_model_deployment")
    second = clean_up_ended_execution(
        client, lambda arn: [], settings, run=run, detail=detail, previous=first
    )
    assert (second["attempt"], second["retry"], second["throughputDeleted"]) == (2, False, True)
    assert f"deleted provisioned throughput {PT_ARN}" in second["summary"]


def test_the_candidates_evaluation_deployment_this_execution_made_is_deleted(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Given a run that failed while its candidate was scored on a temporary deployment, the clean-up
    deletes that deployment (found by its deterministic name, created by this execution)."""
    from bedrock_finetune.naming import evaluation_deployment_name

    client, stubber = stubbed
    identity = RunIdentity(bucket="b", key="datasets/run-1/train.jsonl", version_id="v1", etag=None)
    name = evaluation_deployment_name(LINE, identity)
    temp = "arn:aws:bedrock:us-west-2:123456789012:custom-model-deployment/temporary001"
    _not_found(stubber, "get_model_customization_job")
    _not_found(stubber, "get_provisioned_model_throughput")
    _not_found(stubber, "get_custom_model_deployment")
    stubber.add_response(
        "get_custom_model_deployment",
        {
            "customModelDeploymentArn": temp,
            "modelDeploymentName": name,
            "modelArn": MODEL_ARN,
            "createdAt": "2026-11-22T00:00:00Z",
            "status": "Active",
        },
        {"customModelDeploymentIdentifier": name},
    )
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": temp})
    # it serves this execution's own model (the candidate): nothing else to protect
    stubber.add_response("list_tags_for_resource", _tags(EXECUTION), {"resourceARN": MODEL_ARN})
    stubber.add_response("delete_custom_model_deployment", {}, {"customModelDeploymentIdentifier": temp})
    result = clean_up_run(client, NAMES, line=LINE, execution_arn=EXECUTION, evaluation_deployment=name)
    assert result["deploymentDeleted"] is True
    assert f"deleted custom model deployment {temp}" in result["summary"]
