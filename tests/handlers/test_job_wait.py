"""Waiting for the job without polling: the token kept beside the job, woken by the job's end (event or
fallback check), once; a dead token ignored. Plain logic over S3 (moto), a fake Bedrock and a fake
Step Functions."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bedrock_finetune import job_wait

BUCKET = "data-bucket"
JOB_ARN = "arn:aws:bedrock:us-west-2:123456789012:model-customization-job/base/abcdefghijkl"
JOB = {"jobArn": JOB_ARN, "jobName": "ft-bot-0123456789ab", "customModelName": "m", "reused": False}


class FakeBedrock:
    """GetModelCustomizationJob answering a status the test sets."""

    def __init__(self, status: str = "InProgress") -> None:
        self.status = status
        self.gets = 0

    def get_model_customization_job(self, jobIdentifier: str) -> dict[str, Any]:
        self.gets += 1
        job = {"jobArn": jobIdentifier, "jobName": JOB["jobName"], "status": self.status}
        if self.status == "Completed":
            job["outputModelArn"] = "arn:model/1"
        return job


class FakeStepFunctions:
    """SendTaskSuccess / SendTaskFailure: records each call; answers ``dead`` (an error code) for the
    tokens in it."""

    def __init__(self, dead: dict[str, str] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.failed: list[tuple[str, str, str]] = []
        self.dead = dead or {}

    def _answer(self, token: str, operation: str) -> None:
        if token in self.dead:
            raise ClientError({"Error": {"Code": self.dead[token], "Message": "x"}}, operation)

    def send_task_success(self, *, taskToken: str, output: str) -> None:
        self._answer(taskToken, "SendTaskSuccess")
        self.sent.append((taskToken, json.loads(output)))

    def send_task_failure(self, *, taskToken: str, error: str, cause: str) -> None:
        self._answer(taskToken, "SendTaskFailure")
        self.failed.append((taskToken, error, cause))


class FakeSlot:
    """A run's place in the training queue: records what the wake gave back, or fails with ``error``."""

    def __init__(self, error: str | None = None) -> None:
        self.given_back: list[str] = []
        self.error = error

    def give_back(self, job_status: str | None) -> tuple[str | None, str | None]:
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "PutItem")
        self.given_back.append(str(job_status))
        return "gave back its training slot", None


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


def _wait(s3: Any, bedrock: FakeBedrock, sfn: FakeStepFunctions, execution: str) -> dict[str, Any]:
    return job_wait.wait_for_job_to_end(
        s3,
        bedrock,
        sfn,
        bucket=BUCKET,
        run="bot",
        job=JOB,
        task_token=f"token-{execution}",
        execution_arn=f"arn:aws:states:us-west-2:123456789012:execution:sm:{execution}",
        execution_name=execution,
    )


def _waiting(s3: Any) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_a_running_job_keeps_the_token_beside_it_and_its_end_event_wakes_the_run_once(s3: Any) -> None:
    # Given a run waiting for its running job
    bedrock, sfn = FakeBedrock("InProgress"), FakeStepFunctions()
    assert _wait(s3, bedrock, sfn, "exec-1") == {"waiting": True, "status": "InProgress"}
    assert _waiting(s3) == [f"reports/_waiting/{JOB['jobName']}/exec-1.json"]
    assert sfn.sent == []
    # When the job ends and its event arrives
    bedrock.status = "Completed"
    woken = job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"])
    # Then the run gets the job's status with the started job's fields, once, and the record is gone
    assert woken == [
        {
            "jobName": JOB["jobName"],
            "execution": "exec-1",
            "status": "Completed",
            "outcome": "woken",
            "slot": None,
        }
    ]
    ((token, output),) = sfn.sent
    assert token == "token-exec-1"
    assert output["status"] == "Completed"
    assert output["outputModelArn"] == "arn:model/1"
    assert (output["customModelName"], output["reused"]) == ("m", False)
    assert _waiting(s3) == []
    # And a second delivery of the event wakes nothing
    assert job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"]) == []
    assert len(sfn.sent) == 1


def test_a_job_that_already_ended_wakes_the_run_at_once(s3: Any) -> None:
    """No lost wake-up: the job ended before the run looked (its event went by unseen)."""
    bedrock, sfn = FakeBedrock("Failed"), FakeStepFunctions()
    result = _wait(s3, bedrock, sfn, "exec-1")
    assert result == {"waiting": False, "status": "Failed", "woken": "woken", "slot": None}
    # A failed job fails the wait with its own error (the state machine catches it): no success sent
    assert sfn.sent == []
    assert sfn.failed == [
        ("token-exec-1", "CustomizationJobFailed", "Bedrock gave no failure message; see the job in the "
         "Bedrock console.")
    ]  # fmt: skip
    assert _waiting(s3) == []


@pytest.mark.parametrize(
    ("status", "message", "error", "cause"),
    [
        ("Failed", "Out of memory.", "CustomizationJobFailed", "Out of memory."),
        ("Stopped", "", "CustomizationJobStopped", "The job was stopped before it completed."),
        (
            "Stopped",
            "By admin.",
            "CustomizationJobStopped",
            "The job was stopped before it completed. By admin.",
        ),
    ],
)
def test_a_job_that_ended_without_a_model_fails_the_wait_with_its_error_and_cause(
    s3: Any, status: str, message: str, error: str, cause: str
) -> None:
    # Given a run waiting for its job
    bedrock, sfn = FakeBedrock("InProgress"), FakeStepFunctions()
    _wait(s3, bedrock, sfn, "exec-1")
    # When the job ends without a model, with Bedrock's failure message
    bedrock.status = status
    original = bedrock.get_model_customization_job

    def with_message(jobIdentifier: str) -> dict[str, Any]:
        return {**original(jobIdentifier), **({"failureMessage": message} if message else {})}

    bedrock.get_model_customization_job = with_message  # type: ignore[method-assign]
    job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"])
    # Then the wait fails with the error the state machine catches, and the cause says why
    assert sfn.failed == [("token-exec-1", error, cause)]
    assert sfn.sent == []


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped"])
def test_the_job_end_wakes_the_run_and_gives_its_training_slot_back(s3: Any, status: str) -> None:
    # Given a run holding a training slot, waiting for its job
    bedrock, sfn, slot = FakeBedrock("InProgress"), FakeStepFunctions(), FakeSlot()
    slots = {"arn:aws:states:us-west-2:123456789012:execution:sm:exec-1": slot}
    job_wait.wait_for_job_to_end(
        s3, bedrock, sfn, bucket=BUCKET, run="bot", job=JOB, task_token="token-exec-1",
        execution_arn="arn:aws:states:us-west-2:123456789012:execution:sm:exec-1",
        execution_name="exec-1", slot_of=slots.get,
    )  # fmt: skip
    assert slot.given_back == []  # a running job keeps its slot
    # When the job ends, whatever its status
    bedrock.status = status
    [woken] = job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"], slot_of=slots.get)
    # Then the slot is given back (the next run in line may start), and the run is woken
    assert slot.given_back == [status]
    assert (woken["slot"], woken["outcome"]) == ("gave back its training slot", "woken")
    assert len(sfn.sent) + len(sfn.failed) == 1


def test_a_run_that_ended_while_it_waited_leaves_its_slot_to_the_ended_execution_s_clean_up(
    s3: Any,
) -> None:
    # Given a run that was stopped while it waited (its token is dead), holding a training slot
    bedrock, slot = FakeBedrock("InProgress"), FakeSlot()
    sfn = FakeStepFunctions(dead={"token-exec-1": "TaskDoesNotExist"})
    job_wait.wait_for_job_to_end(
        s3, bedrock, sfn, bucket=BUCKET, run="bot", job=JOB, task_token="token-exec-1",
        execution_arn="exec-arn", execution_name="exec-1", slot_of=lambda _: slot,
    )  # fmt: skip
    # When its job's end arrives (stopped by that clean-up)
    bedrock.status = "Stopped"
    [woken] = job_wait.job_ended(
        s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"], slot_of=lambda _: slot
    )
    # Then the slot is left to that clean-up (which gives it back and says so), and the record goes
    assert (woken["outcome"], woken["slot"]) == ("gone", None)
    assert slot.given_back == []
    assert _waiting(s3) == []


def test_a_slot_that_cannot_be_given_back_is_left_to_the_lease_and_the_run_still_wakes(s3: Any) -> None:
    bedrock, sfn, slot = FakeBedrock("Completed"), FakeStepFunctions(), FakeSlot(error="InternalServerError")
    result = job_wait.wait_for_job_to_end(
        s3, bedrock, sfn, bucket=BUCKET, run="bot", job=JOB, task_token="token-exec-1",
        execution_arn="exec-arn", execution_name="exec-1", slot_of=lambda _: slot,
    )  # fmt: skip
    assert result["slot"] == "left to the lease (InternalServerError)"
    assert [token for token, _ in sfn.sent] == ["token-exec-1"]


def test_an_event_of_a_job_that_has_not_ended_or_is_not_ours_wakes_nothing(s3: Any) -> None:
    bedrock, sfn = FakeBedrock("InProgress"), FakeStepFunctions()
    _wait(s3, bedrock, sfn, "exec-1")
    # Bedrock still says InProgress (the event is only a hint): the run keeps waiting
    assert job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name=JOB["jobName"]) == []
    # Another stack's job: no record, no Bedrock call
    gets = bedrock.gets
    assert job_wait.job_ended(s3, bedrock, sfn, bucket=BUCKET, job_name="someone-elses-job") == []
    assert bedrock.gets == gets
    assert sfn.sent == []
    assert len(_waiting(s3)) == 1


def test_the_fallback_check_wakes_every_execution_waiting_on_an_ended_job_and_ignores_dead_tokens(
    s3: Any,
) -> None:
    # Given two executions of the same upload waiting on the same job (a duplicate delivery), the
    # first of which was stopped meanwhile (its token is dead)
    bedrock = FakeBedrock("InProgress")
    sfn = FakeStepFunctions(dead={"token-exec-1": "InvalidToken"})
    _wait(s3, bedrock, sfn, "exec-1")
    _wait(s3, bedrock, sfn, "exec-2")
    # When the job's end event was lost and the fallback check runs while the job still trains
    assert job_wait.check_waiting_jobs(s3, bedrock, sfn, bucket=BUCKET) == {"waitingJobs": 1, "woken": []}
    # And again once it has ended
    bedrock.status = "Stopped"
    result = job_wait.check_waiting_jobs(s3, bedrock, sfn, bucket=BUCKET)
    # Then the live execution is woken with Stopped, the dead token is ignored, both records are dropped
    assert {(w["execution"], w["outcome"]) for w in result["woken"]} == {
        ("exec-1", "gone"),
        ("exec-2", "woken"),
    }
    assert sfn.sent == []
    assert [(token, error) for token, error, _ in sfn.failed] == [("token-exec-2", "CustomizationJobStopped")]
    assert _waiting(s3) == []
    # And the next check, with nothing waiting, reads nothing from Bedrock
    gets = bedrock.gets
    assert job_wait.check_waiting_jobs(s3, bedrock, sfn, bucket=BUCKET) == {"waitingJobs": 0, "woken": []}
    assert bedrock.gets == gets


def test_an_unexpected_error_answering_the_token_keeps_the_record_for_the_next_check(s3: Any) -> None:
    bedrock = FakeBedrock("Completed")
    sfn = FakeStepFunctions(dead={"token-exec-1": "ThrottlingException"})
    with pytest.raises(ClientError):
        _wait(s3, bedrock, sfn, "exec-1")
    assert len(_waiting(s3)) == 1
