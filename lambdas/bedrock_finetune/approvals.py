"""Approval before buying: the request (a Step Functions task token kept in the line's reports) and
its answer.

The state machine's Request approval state waits on a task token
(https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token).
The request is written to ``reports/<line>/approval.json`` (encrypted with the stack's key) and
published to the topic with the price estimate and how to answer. Answering is
``SendTaskSuccess`` (approve) or ``SendTaskFailure`` with error ``ApprovalRejected``; whoever can read
the token and call those can answer, which the stack's Approver policy grants. Unanswered, the
state's timeout (``approval_timeout_hours``) ends the wait: nothing is bought.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.layout import RunLocation
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import ApprovalSettings

#: The error a rejection sends, which the state machine catches.
REJECTED = "ApprovalRejected"
WAITING, APPROVED, REJECTED_STATUS, EXPIRED = "waiting", "approved", "rejected", "expired"


class ApprovalError(RuntimeError):
    """There is no open request to answer, or the answer could not be delivered; the message says why."""


def _estimate_lines(estimate: Mapping[str, Any]) -> list[str]:
    lines = [f"What: {estimate.get('what')}"]
    for label, key in (
        ("Per hour", "perHour"),
        ("Per month", "perMonth"),
        ("Per 1,000 input and 1,000 output tokens", "per1kInputAndOutputTokens"),
        ("Model storage per month", "storagePerMonth"),
    ):
        if estimate.get(key):
            lines.append(f"{label}: {estimate[key].get('text')}")
    return lines


def answer_commands(line: str, stack_name: str, region: str, bucket: str) -> dict[str, str]:
    """How to answer: the finetune commands and the AWS CLI calls they make."""
    key = RunLocation(bucket=bucket, run=line).approval_key
    token = (
        f"$(aws s3 cp s3://{bucket}/{key} - --region {region} | "
        "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"taskToken\"])')"
    )
    return {
        "approve": f"finetune approve {line} --stack {stack_name} --region {region}",
        "reject": f"finetune reject {line} --stack {stack_name} --region {region}",
        "approveWithAwsCli": f'aws stepfunctions send-task-success --task-token "{token}" '
        f"--task-output '{{\"approved\": true}}' --region {region}",
        "rejectWithAwsCli": f'aws stepfunctions send-task-failure --task-token "{token}" '
        f"--error {REJECTED} --cause 'rejected' --region {region}",
    }


def request_approval(
    s3: Any,
    sns: Any,
    run: RunRef,
    *,
    plan: Mapping[str, Any],
    training: Mapping[str, Any],
    task_token: str,
    execution_arn: str,
    settings: ApprovalSettings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Request approval task: keep the token, publish the request. Returns the request (without
    the token) and the message id."""
    at = now or datetime.now(UTC)
    expires = at + timedelta(hours=settings.timeout_hours)
    commands = answer_commands(run.run, settings.stack_name, settings.region, settings.bucket_name)
    estimate = plan.get("estimate") or {}
    request = {
        "schemaVersion": 1,
        "line": run.run,
        "status": WAITING,
        "executionArn": execution_arn,
        "requestedAt": at.isoformat(),
        "expiresAt": expires.isoformat(),
        "what": f"{plan.get('action')} {plan.get('kind')} {plan.get('endpointName')} "
        f"for {plan.get('modelArn')}",
        "estimate": estimate,
        "training": {k: training.get(k) for k in ("finalTrainingLoss", "finalValidationLoss", "reportUri")},
        "answer": commands,
    }
    location = RunLocation(bucket=settings.bucket_name, run=run.run)
    write_json(s3, location.bucket, location.approval_key, {**request, "taskToken": task_token})
    body = "\n".join(
        [
            f"Run {run.run} trained a model that passed its gates. Serving it needs your approval:",
            f"{request['what']}.",
            "",
            "ESTIMATED COST (an estimate, from the pipeline's price table; your bill may differ):",
            *_estimate_lines(estimate),
            "",
            f"Final training loss: {training.get('finalTrainingLoss')}; final validation loss: "
            f"{training.get('finalValidationLoss')}. Training report: {training.get('reportUri')}",
            "",
            f"Approve:  {commands['approve']}",
            f"Reject:   {commands['reject']}",
            f"(or with the AWS CLI: {commands['approveWithAwsCli']})",
            "",
            f"Unanswered, the request expires at {expires.isoformat()}: nothing is bought and the model "
            "is kept.",
        ]
    )
    response = sns.publish(
        TopicArn=settings.topic_arn,
        Subject=f"[fine-tuning] {run.run}: approval needed"[:100],
        Message=body,
        MessageAttributes={
            "outcome": {"DataType": "String", "StringValue": "approval-requested"},
            "run": {"DataType": "String", "StringValue": run.run},
        },
    )
    return {**request, "messageId": response["MessageId"]}


def read_request(s3: Any, bucket: str, line: str) -> dict[str, Any] | None:
    """The line's approval request (with its token), or None."""
    try:
        body = s3.get_object(Bucket=bucket, Key=RunLocation(bucket=bucket, run=line).approval_key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return dict(json.loads(body.read()))


def answer(
    sfn: Any,
    s3: Any,
    bucket: str,
    line: str,
    *,
    approve: bool,
    by: str,
    reason: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve or reject the line's open request. Returns the updated request (without the token)."""
    request = read_request(s3, bucket, line)
    if request is None or request.get("status") != WAITING or not request.get("taskToken"):
        status = request.get("status") if request else "none"
        raise ApprovalError(
            f"line {line!r} has no approval request waiting (status: {status}); `finetune status {line}` "
            "shows what the run is doing"
        )
    at = now or datetime.now(UTC)
    token = request.pop("taskToken")
    try:
        if approve:
            sfn.send_task_success(
                taskToken=token, output=json.dumps({"approved": True, "by": by, "at": at.isoformat()})
            )
        else:
            sfn.send_task_failure(
                taskToken=token,
                error=REJECTED,
                cause=f"Rejected by {by}: {reason or 'no reason given'}"[:32768],
            )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken"):
            request.update(status=EXPIRED, answeredAt=at.isoformat())
            write_json(s3, bucket, RunLocation(bucket=bucket, run=line).approval_key, request)
            raise ApprovalError(
                f"the approval request of line {line!r} is no longer open ({code}): it expired or its run "
                "ended; nothing was bought. Upload train.jsonl again to ask again."
            ) from exc
        raise
    request.update(
        status=APPROVED if approve else REJECTED_STATUS,
        answeredBy=by,
        answeredAt=at.isoformat(),
        reason=reason,
    )
    write_json(s3, bucket, RunLocation(bucket=bucket, run=line).approval_key, request)
    return request


def close_unanswered(
    s3: Any, bucket: str, line: str, *, execution_arn: str, why: str, now: datetime | None = None
) -> None:
    """Mark this execution's request expired (the state timed out): its token can no longer answer."""
    request = read_request(s3, bucket, line)
    if request is None or request.get("executionArn") != execution_arn or request.get("status") != WAITING:
        return
    request.pop("taskToken", None)
    request.update(status=EXPIRED, answeredAt=(now or datetime.now(UTC)).isoformat(), reason=why)
    write_json(s3, bucket, RunLocation(bucket=bucket, run=line).approval_key, request)
