"""A model line's record (``reports/<line>/line.json``): its versions, which one is served, when and
why, and how to roll back; plus the time to live of a line's no-commitment Provisioned Throughput.

The record is what people read (and ``finetune rollback`` / ``extend`` act on); Bedrock stays the
truth about what exists: the pipeline finds a line's endpoint by its deterministic name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.bedrock_jobs import _call
from bedrock_finetune.layout import RunLocation
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import LineSettings

SCHEMA_VERSION = 1
SERVED, PREVIOUS, KEPT, RETIRED = "served", "previous", "kept", "retired"


class LineError(RuntimeError):
    """A line operation cannot be done (no record, nothing to roll back to...); the message says why."""


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def read_record(s3: Any, bucket: str, line: str) -> dict[str, Any] | None:
    """The line's record, or None when the line has none yet."""
    try:
        body = s3.get_object(Bucket=bucket, Key=RunLocation(bucket=bucket, run=line).line_record_key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return dict(json.loads(body.read()))


def _write(s3: Any, bucket: str, record: dict[str, Any], now: datetime) -> str:
    record["updatedAt"] = now.isoformat()
    return write_json(s3, bucket, RunLocation(bucket=bucket, run=record["line"]).line_record_key, record)


def _rollback_hint(record: Mapping[str, Any], stack_name: str, region: str) -> dict[str, Any] | None:
    """How to put the previous model back: the CLI command and the AWS CLI call it makes."""
    endpoint = record.get("endpoint") or {}
    previous = next((v for v in reversed(record["versions"]) if v["status"] == PREVIOUS), None)
    if previous is None or not endpoint.get("arn") or endpoint.get("deletedAt"):
        return None
    if endpoint["kind"] == "provisioned_throughput":
        aws = (
            f"aws bedrock update-provisioned-model-throughput --provisioned-model-id {endpoint['arn']} "
            f"--desired-model-id {previous['modelArn']} --region {region}"
        )
    else:
        aws = (
            f"aws bedrock update-custom-model-deployment --custom-model-deployment-identifier "
            f"{endpoint['arn']} --model-arn {previous['modelArn']} --region {region}"
        )
    return {
        "toVersion": previous["version"],
        "modelArn": previous["modelArn"],
        "command": f"finetune rollback {record['line']} --stack {stack_name} --region {region}",
        "awsCli": aws,
    }


def record_version(
    s3: Any,
    bucket: str,
    run: RunRef,
    *,
    execution_arn: str,
    job: Mapping[str, Any],
    mode: str,
    endpoint: Mapping[str, Any] | None,
    served: bool,
    why: str,
    stack_name: str,
    region: str,
    now: datetime | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Add (or, for a retry of the same execution, update) this run's version in the line's record.

    ``evaluation``: the decision of the version's evaluation (:func:`evaluation_decision`), kept with it.

    ``served``: the version's model is now behind the line's endpoint (``endpoint``: the Serve model
    result); the version served before becomes ``previous`` (the rollback target), older ones
    ``retired``. Otherwise the version is ``kept`` (trained, not served) with ``why``.
    Returns the record.
    """
    at = _now(now)
    record = read_record(s3, bucket, run.run) or {
        "schemaVersion": SCHEMA_VERSION,
        "line": run.run,
        "mode": mode,
        "endpoint": None,
        "served": None,
        "versions": [],
        "rollback": None,
    }
    versions: list[dict[str, Any]] = record["versions"]
    upload = {"key": run.key, "versionId": run.version_id, "etag": run.etag}
    # One upload is one version: a retry, or a duplicate execution of the same upload, updates it.
    entry = next((v for v in versions if v.get("upload") == upload), None)
    if entry is None:
        entry = {"version": len(versions) + 1, "executionArn": execution_arn}
        versions.append(entry)
    entry.update(
        upload=upload,
        jobArn=job.get("jobArn"),
        modelArn=job.get("outputModelArn"),
        recordedAt=at.isoformat(),
        why=why,
    )
    if evaluation is not None:
        entry["evaluation"] = dict(evaluation)
    if served and endpoint is not None:
        for other in versions:
            if other is entry:
                continue
            if other["status"] == SERVED:
                other["status"] = PREVIOUS
            elif other["status"] == PREVIOUS:
                other["status"] = RETIRED
        entry.update(status=SERVED, servedAt=at.isoformat())
        existing = record.get("endpoint") or {}
        record["mode"] = mode
        record["endpoint"] = {
            "kind": endpoint["kind"],
            "name": endpoint["endpointName"],
            "arn": endpoint["endpointArn"],
            "createdAt": existing.get("createdAt")
            if existing.get("arn") == endpoint["endpointArn"]
            else at.isoformat(),
            "ttl": existing.get("ttl") if existing.get("arn") == endpoint["endpointArn"] else None,
        }
        record["served"] = {
            "version": entry["version"],
            "modelArn": entry["modelArn"],
            "since": at.isoformat(),
        }
    elif entry.get("status") != SERVED:
        entry["status"] = KEPT
    record["rollback"] = _rollback_hint(record, stack_name, region)
    _write(s3, bucket, record, at)
    return record


def rollback(
    bedrock: Any,
    s3: Any,
    bucket: str,
    line: str,
    *,
    stack_name: str,
    region: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Put the line's previous model back behind its endpoint (one Bedrock update call; the ARN stays).

    The version rolled back from becomes the new rollback target, so a rollback can be undone the
    same way. Returns ``{"line", "endpointArn", "from", "to", "record"}``.
    """
    record = read_record(s3, bucket, line)
    if record is None:
        raise LineError(f"line {line!r} has no record (reports/{line}/line.json): nothing was served yet")
    hint = record.get("rollback")
    endpoint = record.get("endpoint") or {}
    if not hint:
        raise LineError(
            f"line {line!r} has no previous model to roll back to (its record lists "
            f"{len(record['versions'])} version(s), and a rollback needs a served one before the current)"
        )
    target = next(v for v in record["versions"] if v["version"] == hint["toVersion"])
    current = next((v for v in record["versions"] if v["status"] == SERVED), None)
    if endpoint["kind"] == "provisioned_throughput":
        _call(
            "UpdateProvisionedModelThroughput",
            bedrock.update_provisioned_model_throughput,
            provisionedModelId=endpoint["arn"],
            desiredModelId=target["modelArn"],
        )
    else:
        _call(
            "UpdateCustomModelDeployment",
            bedrock.update_custom_model_deployment,
            customModelDeploymentIdentifier=endpoint["arn"],
            modelArn=target["modelArn"],
        )
    at = _now(now)
    if current is not None:
        current.update(status=PREVIOUS, why=f"rolled back at {at.isoformat()}")
    target.update(status=SERVED, servedAt=at.isoformat(), why="rollback")
    record["served"] = {"version": target["version"], "modelArn": target["modelArn"], "since": at.isoformat()}
    record["rollback"] = _rollback_hint(record, stack_name, region)
    _write(s3, bucket, record, at)
    return {
        "line": line,
        "endpointArn": endpoint["arn"],
        "from": current["version"] if current else None,
        "to": target["version"],
        "record": record,
    }


# ---- time to live of a line's no-commitment Provisioned Throughput ----

_SCHEDULE_NAME = re.compile(r"[^0-9a-zA-Z-_.]+")


def schedule_names(line: str) -> dict[str, str]:
    """The two one-time schedules of a line's time to live (names: at most 64 characters)."""
    slug = _SCHEDULE_NAME.sub("-", line)[:50]
    return {"remind": f"{slug}-ttl-remind", "expire": f"{slug}-ttl-expire"}


def _at(when: datetime) -> str:
    return f"at({when.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


def _put_schedule(
    scheduler: Any, *, group: str, name: str, when: datetime, target: Mapping[str, Any], exists: bool
) -> None:
    params = {
        "GroupName": group,
        "Name": name,
        "ScheduleExpression": _at(when),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": dict(target),
        "ActionAfterCompletion": "DELETE",
        "State": "ENABLED",
    }
    if exists:
        scheduler.update_schedule(**params)
    else:
        try:
            scheduler.create_schedule(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            scheduler.update_schedule(**params)


def set_time_to_live(
    scheduler: Any,
    s3: Any,
    bucket: str,
    line: str,
    *,
    expires_at: datetime,
    reminder_hours: int,
    group: str,
    function_arn: str,
    role_arn: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Schedule the deletion of the line's throughput at ``expires_at`` and a reminder before it.

    Each schedule's input carries the time it was scheduled for, so a schedule that fires after the
    deadline moved (``finetune extend``) sees it is stale and does nothing.
    """
    record = read_record(s3, bucket, line)
    if record is None or not (record.get("endpoint") or {}).get("arn"):
        raise LineError(f"line {line!r} has no endpoint to give a time to live")
    endpoint = record["endpoint"]
    remind_at = max(expires_at - timedelta(hours=reminder_hours), _now(now))
    names = schedule_names(line)
    for action, when in (("remind", remind_at), ("expire", expires_at)):
        target = {
            "Arn": function_arn,
            "RoleArn": role_arn,
            "Input": json.dumps(
                {
                    "action": action,
                    "bucket": bucket,
                    "line": line,
                    "endpointArn": endpoint["arn"],
                    "scheduledTime": "<aws.scheduler.scheduled-time>",
                }
            ),
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
        }
        _put_schedule(scheduler, group=group, name=names[action], when=when, target=target, exists=False)
    endpoint["ttl"] = {
        "expiresAt": expires_at.isoformat(),
        "reminderAt": remind_at.isoformat(),
        "scheduleGroup": group,
        "schedules": names,
    }
    _write(s3, bucket, record, _now(now))
    return dict(endpoint["ttl"])


def extend(
    scheduler: Any, s3: Any, bucket: str, line: str, *, hours: int, now: datetime | None = None
) -> dict[str, Any]:
    """Move the line's time to live ``hours`` later (from the later of now and the current deadline);
    the reminder keeps its lead time before the deadline."""
    if hours <= 0:
        raise LineError(f"--hours {hours}: give a positive number of hours")
    record = read_record(s3, bucket, line)
    ttl = ((record or {}).get("endpoint") or {}).get("ttl")
    if record is None or not ttl:
        raise LineError(
            f"line {line!r} has no time to live to extend (throughput_ttl_hours is not set for it)"
        )
    at = _now(now)
    old = datetime.fromisoformat(ttl["expiresAt"])
    lead = old - datetime.fromisoformat(ttl["reminderAt"])
    new = max(old, at) + timedelta(hours=hours)
    remind_at = max(new - lead, at)
    for action, when in (("remind", remind_at), ("expire", new)):
        current = scheduler.get_schedule(GroupName=ttl["scheduleGroup"], Name=ttl["schedules"][action])
        target = {
            k: v for k, v in current["Target"].items() if k in ("Arn", "RoleArn", "Input", "RetryPolicy")
        }
        _put_schedule(
            scheduler,
            group=ttl["scheduleGroup"],
            name=ttl["schedules"][action],
            when=when,
            target=target,
            exists=True,
        )
    ttl.update(expiresAt=new.isoformat(), reminderAt=remind_at.isoformat())
    _write(s3, bucket, record, at)
    return {"line": line, "from": old.isoformat(), "to": new.isoformat(), "reminderAt": remind_at.isoformat()}


def on_schedule(
    bedrock: Any, s3: Any, event: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """The ExpireThroughput function: a time-to-live schedule fired.

    ``remind``: returns a reminder to publish. ``expire``: deletes the line's no-commitment throughput
    (a committed one is never deleted) and records it. A schedule for a deadline that has since moved,
    or for an endpoint the line no longer has, does nothing. Returns ``{"done", "notice"?}``.
    """
    bucket, line, arn = str(event["bucket"]), str(event["line"]), str(event["endpointArn"])
    record = read_record(s3, bucket, line)
    endpoint = (record or {}).get("endpoint") or {}
    ttl = endpoint.get("ttl") or {}
    if record is None or endpoint.get("arn") != arn or endpoint.get("deletedAt") or not ttl:
        return {"done": "nothing: the line no longer has this endpoint"}
    scheduled = datetime.fromisoformat(
        str(event.get("scheduledTime") or _now(now).isoformat()).replace("Z", "+00:00")
    )
    action = str(event["action"])
    due = datetime.fromisoformat(ttl["reminderAt" if action == "remind" else "expiresAt"])
    if scheduled + timedelta(minutes=1) < due:
        return {"done": f"nothing: the {action} moved to {due.isoformat()} (extended)"}
    if action == "remind":
        return {
            "done": "reminded",
            "notice": {
                "subject": f"[fine-tuning] {line}: Provisioned Throughput ends at {ttl['expiresAt']}",
                "body": f"Line {line} is served by {arn}, billed every hour. Its time to live ends at "
                f"{ttl['expiresAt']}; it will then be deleted (the custom models are kept).\n"
                f"To keep it longer: finetune extend {line} --hours N",
            },
        }
    described = _call(
        "GetProvisionedModelThroughput", bedrock.get_provisioned_model_throughput, provisionedModelId=arn
    )
    if described.get("commitmentDuration"):
        return {
            "done": "kept: committed",
            "notice": {
                "subject": f"[fine-tuning] {line}: committed throughput kept",
                "body": f"{arn} has a {described['commitmentDuration']} commitment until "
                f"{described.get('commitmentExpirationTime')}; it cannot be deleted before then and keeps "
                "billing.",
            },
        }
    _call(
        "DeleteProvisionedModelThroughput",
        bedrock.delete_provisioned_model_throughput,
        provisionedModelId=arn,
    )
    at = _now(now)
    endpoint["deletedAt"] = at.isoformat()
    record["served"] = None
    for version in record["versions"]:
        if version["status"] in (SERVED, PREVIOUS):
            version["status"] = KEPT
            version["why"] = f"endpoint deleted at the end of its time to live ({ttl['expiresAt']})"
    record["rollback"] = None
    _write(s3, bucket, record, at)
    return {
        "done": "deleted",
        "notice": {
            "subject": f"[fine-tuning] {line}: Provisioned Throughput deleted (time to live)",
            "body": f"{arn} was deleted at the end of its time to live ({ttl['expiresAt']}); nothing of "
            f"line {line} is billing by the hour now. The custom models are kept: upload the line again, "
            "or create a throughput by hand, to serve one.",
        },
    }


# ---- the pipeline's use cases ----


def record_line_version(
    s3: Any,
    scheduler: Any,
    run: RunRef,
    *,
    task: Mapping[str, Any],
    settings: LineSettings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The Record served version / Record kept version tasks.

    ``task``: ``job``, ``mode``, ``served`` (bool), ``endpoint`` (the Serve model result, when served),
    ``why``, ``executionArn``. A served version whose endpoint was just created gets the configured
    time to live. A version kept because its approval expired closes the request.
    Returns ``version``, ``served``, ``endpointArn``, ``ttl`` and ``rollback``.
    """
    at = _now(now)
    served = bool(task.get("served"))
    endpoint = task.get("endpoint") if served else None
    execution_arn = str(task["executionArn"])
    why = str(task.get("why") or "")
    if not served:
        why = _answer_of(s3, settings.bucket_name, run.run, execution_arn) or why
    # The state machine passes the flag as a string ("true" / "false", from a Pass state's parameters).
    if not served and str(task.get("approvalExpired")).lower() == "true":
        from bedrock_finetune.approvals import close_unanswered  # noqa: PLC0415 - only this path

        close_unanswered(s3, settings.bucket_name, run.run, execution_arn=execution_arn, why=why, now=at)
    record = record_version(
        s3,
        settings.bucket_name,
        run,
        execution_arn=execution_arn,
        job=task.get("job") or {},
        mode=str(task.get("mode") or "none"),
        endpoint=endpoint,
        served=served,
        why=why,
        stack_name=settings.stack_name,
        region=settings.region,
        now=at,
        evaluation=evaluation_decision(s3, settings.bucket_name, run, execution_arn),
    )
    ttl = ((record.get("endpoint") or {}) or {}).get("ttl")
    wants_ttl = (
        served
        and endpoint is not None
        and endpoint.get("mode") == "provisioned"
        and settings.ttl_hours is not None
        and not ttl
    )
    if wants_ttl:
        ttl = set_time_to_live(
            scheduler,
            s3,
            settings.bucket_name,
            run.run,
            expires_at=at + timedelta(hours=int(settings.ttl_hours or 0)),
            reminder_hours=settings.reminder_hours,
            group=settings.schedule_group,
            function_arn=settings.expire_function_arn,
            role_arn=settings.scheduler_role_arn,
            now=at,
        )
    upload = {"key": run.key, "versionId": run.version_id, "etag": run.etag}
    entry = next(v for v in record["versions"] if v.get("upload") == upload)
    return {
        "version": entry["version"],
        "why": why,
        "served": served,
        "status": entry["status"],
        "endpointArn": (record.get("endpoint") or {}).get("arn") if served else None,
        "ttl": ttl,
        "rollback": record.get("rollback"),
        "recordUri": f"s3://{settings.bucket_name}/{run.location.line_record_key}",
    }


def evaluation_decision(s3: Any, bucket: str, run: RunRef, execution_arn: str) -> dict[str, Any] | None:
    """This execution's evaluation (``reports/<run>/evaluation.json``) in short: outcome, summary, why
    and where the report is; None when it was not evaluated by this execution."""
    key = f"reports/{run.run}/evaluation.json"
    try:
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    if doc.get("executionArn") != execution_arn:
        return None
    decision = doc.get("decision") or {}
    return {
        "status": doc.get("status"),
        "outcome": decision.get("outcome"),
        "summary": decision.get("summary") or doc.get("why"),
        "why": decision.get("why") or doc.get("why"),
        "reportUri": f"s3://{bucket}/{key}",
    }


def _answer_of(s3: Any, bucket: str, line: str, execution_arn: str) -> str | None:
    """Who rejected this execution's approval request, and why (from the request's record)."""
    from bedrock_finetune.approvals import REJECTED_STATUS, read_request  # noqa: PLC0415 - no cycle at import

    request = read_request(s3, bucket, line)
    if (
        not request
        or request.get("executionArn") != execution_arn
        or request.get("status") != REJECTED_STATUS
    ):
        return None
    return f"approval rejected by {request.get('answeredBy')}: {request.get('reason') or 'no reason given'}"


def on_time_to_live(
    bedrock: Any,
    s3: Any,
    sns: Any,
    *,
    event: Mapping[str, Any],
    settings: LineSettings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ExpireThroughput function: act on the schedule (:func:`on_schedule`) and publish its notice."""
    result = on_schedule(bedrock, s3, event, now=now)
    notice = result.get("notice")
    if notice:
        from bedrock_finetune.notifications import publish_message  # noqa: PLC0415 - only when there is news

        result["messageId"] = publish_message(sns, settings.topic_arn, notice["subject"], notice["body"])
    return result


# ---- the serving inventory (the alarms' and the dashboard's endpoint metrics) ----


def serving_inventory(
    s3: Any, bucket: str, *, hourly_cost: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """What every line of ``bucket`` serves now, from its records: endpoints in service, those past
    their time to live, approval requests waiting more than a day, and the estimated cost per hour.

    ``hourly_cost(endpoint) -> float | None`` prices one endpoint (None: unknown, counted apart).
    Returns the four metric values and the lines behind each.
    """
    at = _now(now)
    in_service: list[str] = []
    past_ttl: list[str] = []
    waiting: list[str] = []
    cost, unpriced = 0.0, []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="reports/"):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            line = key.split("/")[1] if key.count("/") == 2 else ""
            if key.endswith("/line.json"):
                endpoint = ((read_record(s3, bucket, line) or {}).get("endpoint")) or {}
                if not endpoint.get("arn") or endpoint.get("deletedAt"):
                    continue
                in_service.append(line)
                expires = (endpoint.get("ttl") or {}).get("expiresAt")
                if expires and datetime.fromisoformat(expires) < at:
                    past_ttl.append(line)
                price = hourly_cost(endpoint) if hourly_cost else None
                if price is None:
                    unpriced.append(line)
                else:
                    cost += float(price)
            elif key.endswith("/approval.json"):
                from bedrock_finetune.approvals import WAITING, read_request  # noqa: PLC0415 - no import cycle

                request = read_request(s3, bucket, line) or {}
                asked = request.get("requestedAt")
                if (
                    request.get("status") == WAITING
                    and asked
                    and datetime.fromisoformat(asked) < at - timedelta(days=1)
                ):
                    waiting.append(line)
    return {
        "endpointsInService": len(in_service),
        "endpointsPastTtl": len(past_ttl),
        "approvalsWaitingOverADay": len(waiting),
        "endpointHourlyCostEstimate": round(cost, 4),
        "lines": {
            "inService": in_service,
            "pastTtl": past_ttl,
            "approvalsWaiting": waiting,
            "unpriced": unpriced,
        },
    }
