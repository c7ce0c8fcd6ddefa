"""Waiting for a customization job without polling it: a task token woken by the job's end.

The state machine's "Wait for the job to end" state invokes :func:`wait_for_job_to_end` with
``.waitForTaskToken``
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token).
It keeps the token in a small record, ``reports/_waiting/<job name>/<execution name>.json`` (the
dataset bucket's key encrypts it; a run name cannot start with ``_``, so the folder is no run's), then
looks at the job once: a job that has already ended wakes the run at once (no lost wake-up).

Bedrock sends "Model Customization Job State Change" events (source ``aws.bedrock``, status in
``detail.jobStatus``; https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
A rule sends the terminal ones to :func:`job_ended`, which wakes the runs waiting on that job with
``SendTaskSuccess`` and the job's status. Bedrock delivers those events on a best-effort basis
(https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge.html), so a scheduled
rule also runs :func:`check_waiting_jobs`: it lists the waiting records only (one per waiting run;
each is deleted when its run wakes) and wakes those whose job has ended.

Waking twice is harmless: a token already used, timed out or belonging to a stopped execution
answers ``TaskTimedOut``, ``TaskDoesNotExist`` or ``InvalidToken``; the record is then dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.bedrock_jobs import JOB_TERMINAL, describe_job, find_job
from bedrock_finetune.layout import REPORTS_PREFIX
from bedrock_finetune.reports import write_json

#: Where the waiting records live: one folder per job, one record per execution waiting on it (a
#: duplicate execution of the same upload waits on the same job with its own token).
WAITING_PREFIX = f"{REPORTS_PREFIX}_waiting/"
#: SendTaskSuccess errors that mean the token can no longer be answered: nothing waits on it.
DEAD_TOKEN_ERRORS = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


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
    outcome = wake(sfn, s3, bucket, key, record=record, status=status)
    return {"waiting": False, "status": status["status"], "woken": outcome}


def wake(
    sfn: Any, s3: Any, bucket: str, key: str, *, record: Mapping[str, Any], status: Mapping[str, Any]
) -> str:
    """Send the job's status to the waiting execution and drop its record. Returns ``woken``, or
    ``gone`` when the token could no longer be answered (already woken, timed out, execution ended)."""
    output = {**dict(record.get("job") or {}), **status}
    try:
        sfn.send_task_success(taskToken=str(record["taskToken"]), output=json.dumps(output, default=str))
        outcome = "woken"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in DEAD_TOKEN_ERRORS:
            raise
        outcome = "gone"
    s3.delete_object(Bucket=bucket, Key=key)
    return outcome


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
    s3: Any, bedrock: Any, sfn: Any, bucket: str, *, job_name: str, records: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, str]]:
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
    return [
        {"jobName": job_name, "execution": str(record.get("executionName")), "status": str(status["status"]),
         "outcome": wake(sfn, s3, bucket, key, record=record, status=status)}
        for key, record in records
    ]  # fmt: skip


def job_ended(s3: Any, bedrock: Any, sfn: Any, *, bucket: str, job_name: str) -> list[dict[str, str]]:
    """A job's state-change event: wake the runs waiting on ``job_name``, if it has ended. Returns
    what was done for each waiting run (none: no run of this stack waits on that job)."""
    records = list(_records(s3, bucket, f"{WAITING_PREFIX}{job_name}/"))
    return _wake_job(s3, bedrock, sfn, bucket, job_name=job_name, records=records) if records else []


def check_waiting_jobs(s3: Any, bedrock: Any, sfn: Any, *, bucket: str) -> dict[str, Any]:
    """The fallback check (scheduled): every waiting run's job, once; wake those that have ended.

    Lists only ``reports/_waiting/``, which holds one record per run waiting now, so each check
    costs a list call plus one read and one GetModelCustomizationJob per waiting job."""
    by_job: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, record in _records(s3, bucket, WAITING_PREFIX):
        by_job.setdefault(str(record["jobName"]), []).append((key, record))
    woken: list[dict[str, str]] = []
    for job_name, records in by_job.items():
        woken.extend(_wake_job(s3, bedrock, sfn, bucket, job_name=job_name, records=records))
    return {"waitingJobs": len(by_job), "woken": woken}
