"""Waiting for a customization job without polling it: a task token woken by the job's end.

The state machine's "Wait for the job to end" state invokes :func:`wait_for_job_to_end` with
``.waitForTaskToken``
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token).
It keeps the token in a small record, ``reports/_waiting/<job name>/<execution name>.json`` (the
dataset bucket's key encrypts it; a run name cannot start with ``_``, so the folder is no run's), then
looks at the job once: a job that has already ended wakes the run at once (no lost wake-up).

Bedrock sends "Model Customization Job State Change" events (source ``aws.bedrock``, status in
``detail.jobStatus``; https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
A rule sends the terminal ones to :func:`job_ended`, which wakes the runs waiting on that job:
``SendTaskSuccess`` with the job's fields when it completed, ``SendTaskFailure`` with
``CustomizationJobFailed`` or ``CustomizationJobStopped`` when it did not (the state's Catch takes
the run to its clean-up, so no Choice on the status follows the wait). Each wake also gives the
run's training slot back (:class:`~bedrock_finetune.training_queue.RunSlot`): the job no longer
counts against the account's quota, so the next run in line may start while this one goes on.
Bedrock delivers those events on a best-effort basis
(https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge.html), so a scheduled
rule also runs :func:`check_waiting_jobs`: it lists the waiting records only (one per waiting run;
each is deleted when its run wakes) and wakes those whose job has ended.

Waking twice is harmless: a token already used, timed out or belonging to a stopped execution
answers ``TaskTimedOut``, ``TaskDoesNotExist`` or ``InvalidToken``; the record is then dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.bedrock_jobs import JOB_TERMINAL, describe_job, find_job
from bedrock_finetune.errors import AwsTransientError
from bedrock_finetune.layout import REPORTS_PREFIX
from bedrock_finetune.reports import write_json
from bedrock_finetune.training_queue import RunSlot

#: Where the waiting records live: one folder per job, one record per execution waiting on it (a
#: duplicate execution of the same upload waits on the same job with its own token).
WAITING_PREFIX = f"{REPORTS_PREFIX}_waiting/"
#: SendTaskSuccess errors that mean the token can no longer be answered: nothing waits on it.
DEAD_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
#: The error a waiting run gets for a job that ended without a model (the state machine catches these).
JOB_END_ERRORS: Mapping[str, str] = {"Failed": "CustomizationJobFailed", "Stopped": "CustomizationJobStopped"}
#: A run's place in the training queue, by execution ARN (None: the stack has no queue).
SlotOf = Callable[[str], RunSlot | None]


def _no_queue(_execution_arn: str) -> RunSlot | None:
    return None


def waiting_key(job_name: str, execution_name: str) -> str:
    """The waiting record of one execution waiting on one job."""
    return f"{WAITING_PREFIX}{job_name}/{execution_name}.json"


def wait_for_job_to_end(
    s3: Any,
    bedrock: Any,
    sfn: Any,
    *,
    bucket: str,
    run: str,
    job: Mapping[str, Any],
    task_token: str,
    execution_arn: str,
    execution_name: str,
    slot_of: SlotOf = _no_queue,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Wait for the job to end task: keep the token, then wake at once if the job has already
    ended. Returns ``{"waiting": bool, "status": ...}`` (the state's output comes from the wake)."""
    job_name, job_arn = str(job["jobName"]), str(job["jobArn"])
    record: dict[str, Any] = {
        "schemaVersion": 1,
        "run": run,
        "jobName": job_name,
        "jobArn": job_arn,
        "executionArn": execution_arn,
        "executionName": execution_name,
        "since": (now or datetime.now(UTC)).isoformat(),
        "job": dict(job),
        "taskToken": task_token,
    }
    key = waiting_key(job_name, execution_name)
    write_json(s3, bucket, key, record)
    # Written first, looked at second: a job that ends between the two is seen here or by its event.
    status = describe_job(bedrock, job_arn)
    if status["status"] not in JOB_TERMINAL:
        return {"waiting": True, "status": status["status"]}
    woken = wake(sfn, s3, bucket, key, record=record, status=status, slot_of=slot_of)
    return {"waiting": False, "status": status["status"], **woken}


def job_end_cause(status: Mapping[str, Any]) -> str:
    """Why a job that ended without a model did: Bedrock's failure message, and what ended it."""
    message = str(status.get("failureMessage") or "").strip()
    if status.get("status") == "Stopped":
        return f"The job was stopped before it completed. {message}".strip()
    return message or "Bedrock gave no failure message; see the job in the Bedrock console."


def give_back_slot(slot: RunSlot | None, job_status: str) -> str | None:
    """The run's training slot, given back now that its job has ended (None: no queue or no ticket).
    A failed write is left to the clean-up or the lease: waking the run matters more."""
    if slot is None:
        return None
    try:
        done, _ = slot.give_back(job_status)
    except ClientError as exc:
        return f"left to the lease ({exc.response.get('Error', {}).get('Code')})"
    except AwsTransientError:
        return "left to the lease (the queue's table kept changing)"
    return done


def wake(
    sfn: Any,
    s3: Any,
    bucket: str,
    key: str,
    *,
    record: Mapping[str, Any],
    status: Mapping[str, Any],
    slot_of: SlotOf = _no_queue,
) -> dict[str, str | None]:
    """Answer the run's token with the job's end, give its training slot back and drop its record.
    Returns ``woken`` (``woken``, or ``gone`` when the token could no longer be answered: already
    woken, timed out, execution ended) and ``slot`` (what was done with the run's training slot).

    Only a run that was woken gives its slot back here: an execution that ended while it waited (an
    abort, a timeout) has it given back by the clean-up of ended executions, which reports it."""
    token = str(record["taskToken"])
    error = JOB_END_ERRORS.get(str(status["status"]))
    try:
        if error is None:
            output = {**dict(record.get("job") or {}), **status}
            sfn.send_task_success(taskToken=token, output=json.dumps(output, default=str))
        else:
            sfn.send_task_failure(taskToken=token, error=error, cause=job_end_cause(status)[:32_768])
        outcome = "woken"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in DEAD_TOKEN_ERRORS:
            raise
        outcome = "gone"
    slot = None
    if outcome == "woken":
        slot = give_back_slot(slot_of(str(record.get("executionArn") or "")), str(status["status"]))
    s3.delete_object(Bucket=bucket, Key=key)
    return {"woken": outcome, "slot": slot}


def _records(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key, record)`` of each waiting record under ``prefix``."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            try:
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    continue  # woken meanwhile
                raise
            yield item["Key"], dict(json.loads(body))


def _wake_job(
    s3: Any,
    bedrock: Any,
    sfn: Any,
    bucket: str,
    *,
    job_name: str,
    records: list[tuple[str, dict[str, Any]]],
    slot_of: SlotOf,
) -> list[dict[str, str | None]]:
    """Wake every record of ``job_name`` if the job has ended (Bedrock's answer decides, not the event)."""
    found = find_job(bedrock, records[0][1]["jobArn"])
    if found is None:
        status: dict[str, Any] = {
            "status": "Failed",
            "failureMessage": "The job no longer exists in Bedrock.",
        }
    else:
        status = describe_job(bedrock, records[0][1]["jobArn"])
        if status["status"] not in JOB_TERMINAL:
            return []
    woken: list[dict[str, str | None]] = []
    for key, record in records:
        done = wake(sfn, s3, bucket, key, record=record, status=status, slot_of=slot_of)
        woken.append(
            {"jobName": job_name, "execution": str(record.get("executionName")),
             "status": str(status["status"]), "outcome": done["woken"], "slot": done["slot"]}
        )  # fmt: skip
    return woken


def job_ended(
    s3: Any, bedrock: Any, sfn: Any, *, bucket: str, job_name: str, slot_of: SlotOf = _no_queue
) -> list[dict[str, str | None]]:
    """A job's state-change event: wake the runs waiting on ``job_name``, if it has ended. Returns
    what was done for each waiting run (none: no run of this stack waits on that job)."""
    records = list(_records(s3, bucket, f"{WAITING_PREFIX}{job_name}/"))
    if not records:
        return []
    return _wake_job(s3, bedrock, sfn, bucket, job_name=job_name, records=records, slot_of=slot_of)


def check_waiting_jobs(
    s3: Any, bedrock: Any, sfn: Any, *, bucket: str, slot_of: SlotOf = _no_queue
) -> dict[str, Any]:
    """The fallback check (scheduled): every waiting run's job, once; wake those that have ended.

    Lists only ``reports/_waiting/``, which holds one record per run waiting now, so each check
    costs a list call plus one read and one GetModelCustomizationJob per waiting job."""
    by_job: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, record in _records(s3, bucket, WAITING_PREFIX):
        by_job.setdefault(str(record["jobName"]), []).append((key, record))
    woken: list[dict[str, str | None]] = []
    for job_name, records in by_job.items():
        woken.extend(_wake_job(s3, bedrock, sfn, bucket, job_name=job_name, records=records, slot_of=slot_of))
    return {"waitingJobs": len(by_job), "woken": woken}
