"""``finetune local --json``: one JSON document that says how a local run ended.

The shape is stable (tests and scripts read it); every key is always present:

``execution``      ``{"arn", "status", "error", "cause"}`` of the run's execution (DescribeExecution)
``scenario``       the scenario's name
``run``            the run name
``notifications``  ``[{"subject", "body"}]``: every message published to the notification topic
                   during the run, oldest first (the clean-up's after an abort, and the teardown's
                   with ``--destroy``, included)
``created``        ``{"jobs", "throughputs", "deployments"}``, lists of ``{"arn", "status"}``: every
                   customization job, provisioned throughput and custom model deployment created in
                   the emulated Bedrock, oldest first, with its status at the end (``Deleted`` for
                   one that was deleted)
``left_billing``   ``{"throughputs", "deployments", "running_jobs"}``, lists of ``{"arn", "status"}``
                   read from the emulated Bedrock once everything the execution's end set off has
                   settled (and after the stack's deletion with ``--destroy``): every provisioned
                   throughput that still exists, whatever its status; every customization job not
                   yet ended (``InProgress`` or ``Stopping``); every custom model deployment that
                   still exists (on-demand: billed per token only, listed so nothing is unseen)
``reports``        S3 key under ``reports/`` -> a short summary of that report
``transitions``    how many states the run's execution entered: the history events whose type ends
                   in ``StateEntered`` (Pass, Choice, Wait, Task, Succeed and Fail states alike; an
                   aborted execution counts the states entered before the stop)
``settled``        whether everything the execution's end set off ended within the runner's bound
``other_executions``  ``[{"arn", "stateMachine", "status"}]``: executions started during the run
                   besides the run's own (a second upload's run, a clean-up state machine)
``user_actions``   what the scenario's user did during the run (a StopExecution, an upload)
``delivery_errors``   EventBridge deliveries whose target failed (on AWS: retried, then the
                   dead-letter queue)
``stack_deletion`` ``null``, or with ``--destroy`` ``{"status", "failure"}``
``endpoint``       ``null``, or the line's endpoint at the end of the run: ``{"arn", "kind", "status"}``
``followup_runs``  ``[{"arn", "status", "error", "endpointArn"}]``: runs the scenario's user started
                   after the first (``second-version``: the same line's next version)
``job_wait``       ``null`` (the run never waited for a job), or how its wait ended:
                   ``{"job_ended_aws_seconds", "run_woke_aws_seconds", "noticed_after_seconds",
                   "woken_by"}``, times in emulated seconds (``null`` when the job never ended, e.g.
                   the run was stopped first); ``woken_by`` is ``job state-change event``, ``fallback
                   check`` or ``Wait for the job to end`` (the job had ended before the run looked)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bedrock_finetune.layout import REPORTS_PREFIX
from finetune.local import bedrock

if TYPE_CHECKING:
    from finetune.local.runner import LocalRun

#: The keys of the document, in order.
KEYS = (
    "execution",
    "scenario",
    "run",
    "notifications",
    "created",
    "left_billing",
    "reports",
    "transitions",
    "settled",
    "other_executions",
    "user_actions",
    "delivery_errors",
    "stack_deletion",
    "endpoint",
    "followup_runs",
    "job_wait",
    "evaluation",
)
#: Customization job statuses that are not yet final.
RUNNING_JOB_STATUSES = frozenset({"InProgress", "Stopping"})


def left_billing(account: str, region: str) -> dict[str, list[dict[str, str]]]:
    """What the emulated Bedrock of ``account`` and ``region`` still holds that costs money.

    Read from the emulation's state, not through the API, so that nothing is polled (a
    GetProvisionedModelThroughput would move a status on).
    """
    state = bedrock.state_for(account, region)
    return {
        "throughputs": [{"arn": pt.arn, "status": pt.reported_status} for pt in state.throughputs.values()],
        "deployments": [{"arn": d.arn, "status": d.reported_status} for d in state.deployments.values()],
        "running_jobs": [
            {"arn": job.job_arn, "status": job.reported_status}
            for job in state.jobs.values()
            if job.reported_status in RUNNING_JOB_STATUSES
        ],
    }


def created(account: str, region: str) -> dict[str, list[dict[str, str]]]:
    """Every job and throughput created in the emulated Bedrock, with its status now (no poll)."""
    state = bedrock.state_for(account, region)
    throughputs = [(pt, pt.reported_status) for pt in state.throughputs.values()]
    throughputs += [(pt, "Deleted") for pt in state.deleted_throughputs.values()]
    throughputs.sort(key=lambda item: item[0].creation_time)
    deployments = [(d, d.reported_status) for d in state.deployments.values()]
    deployments += [(d, "Deleted") for d in state.deleted_deployments.values()]
    deployments.sort(key=lambda item: item[0].created_at)
    return {
        "jobs": [
            {"arn": job.job_arn, "status": job.reported_status}
            for job in sorted(state.jobs.values(), key=lambda job: job.creation_time)
        ],
        "throughputs": [{"arn": pt.arn, "status": status} for pt, status in throughputs],
        "deployments": [{"arn": d.arn, "status": status} for d, status in deployments],
    }


def count_transitions(events: Iterable[Mapping[str, Any]]) -> int:
    """The states an execution entered: its history events whose type ends in ``StateEntered``."""
    return sum(1 for event in events if str(event.get("type", "")).endswith("StateEntered"))


def _validation_summary(report: dict[str, Any]) -> dict[str, Any]:
    files = report.get("files")
    files = files if isinstance(files, dict) else {}
    return {
        "valid": report.get("valid"),
        "errors": _total(report.get("error_counts")),
        "warnings": _total(report.get("warning_counts")),
        "error_counts": report.get("error_counts") or {},
        "records": {
            part: info["records"]
            for part, info in files.items()
            if isinstance(info, dict) and "records" in info
        },
    }


def _training_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        k: report.get(k)
        for k in ("finalTrainingLoss", "finalValidationLoss", "epochs", "steps", "earlyStopped")
    } | {"qualityGatePassed": _field(report.get("qualityGate"), "passed")}


def _run_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcome": report.get("outcome"),
        "error": report.get("error"),
        "endpoint": report.get("endpoint"),
        "lineVersion": report.get("lineVersion"),
        "cleanup": _text(report.get("cleanup"), "summary"),
    }


def _line_summary(report: dict[str, Any]) -> dict[str, Any]:
    endpoint: dict[str, Any] = report["endpoint"] if isinstance(report.get("endpoint"), dict) else {}
    versions: list[Any] = report["versions"] if isinstance(report.get("versions"), list) else []
    return {
        "endpoint": endpoint.get("arn"),
        "endpointDeleted": bool(endpoint.get("deletedAt")),
        "served": _field(report.get("served"), "version"),
        "versions": [
            {"version": v.get("version"), "status": v.get("status"), "model": v.get("modelArn")}
            for v in versions
            if isinstance(v, dict)
        ],
        "rollbackTo": _field(report.get("rollback"), "toVersion"),
        "ttl": _field(endpoint.get("ttl"), "expiresAt"),
    }


def _evaluation_summary(report: dict[str, Any]) -> dict[str, Any]:
    decision = report["decision"] if isinstance(report.get("decision"), dict) else {}
    aggregates = report["aggregates"] if isinstance(report.get("aggregates"), dict) else {}
    metric = report.get("metric")
    return {
        "status": report.get("status"),
        "prompts": report.get("promptCount"),
        "metric": metric,
        "outcome": decision.get("outcome"),
        "summary": decision.get("summary") or report.get("why"),
        "candidate": _field(aggregates.get("candidate"), str(metric)),
        "current": _field(aggregates.get("current"), str(metric)),
    }


def _approval_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in ("status", "what", "answeredBy", "expiresAt")}


#: How each report is summarized, by its file name.
_SUMMARIES = {
    "validation.json": _validation_summary,
    "training.json": _training_summary,
    "run.json": _run_summary,
    "line.json": _line_summary,
    "approval.json": _approval_summary,
    "evaluation.json": _evaluation_summary,
}


def summarize_report(key: str, report: Any) -> dict[str, Any]:
    """A short summary of one report, by its file name."""
    if not isinstance(report, dict):
        return {"unreadable": True}
    summarize = _SUMMARIES.get(key.rsplit("/", 1)[-1])
    return summarize(report) if summarize else {"keys": sorted(report)}


def _total(counts: Any) -> int:
    if not isinstance(counts, dict):
        return 0
    return sum(v for v in counts.values() if isinstance(v, int))


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _text(value: Any, name: str) -> Any:
    """``value[name]`` of an object, or the value itself (a report may hold either)."""
    return value.get(name) if isinstance(value, dict) else value


def report_summaries(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """Every JSON report under ``reports/`` in ``bucket``: key -> its short summary."""
    summaries: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=REPORTS_PREFIX):
        for item in page.get("Contents", []):
            key = item["Key"]
            try:
                report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except ValueError:
                report = None
            summaries[key] = summarize_report(key, report)
    return summaries


def _endpoint(state: Mapping[str, Any]) -> dict[str, Any] | None:
    endpoint = state.get("endpoint") if isinstance(state.get("endpoint"), dict) else None
    if not endpoint or not endpoint.get("endpointArn"):
        return None
    return {"arn": endpoint["endpointArn"], "kind": endpoint.get("kind"), "status": endpoint.get("status")}


def _evaluation(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's evaluation result as the state machine last saw it (None: the run was not evaluated)."""
    evaluation = state.get("evaluation") if isinstance(state.get("evaluation"), dict) else None
    if not evaluation:
        return None
    keys = ("evaluated", "passed", "outcome", "summary", "why", "prompts", "scored", "reportUri")
    return {k: evaluation.get(k) for k in keys}


def build_summary(result: LocalRun) -> dict[str, Any]:
    """The ``--json`` document of a finished local run."""
    deletion = result.deletion
    notifications = list(result.notifications) + (list(deletion.notifications) if deletion else [])
    document = {
        "execution": {
            "arn": result.execution_arn,
            "status": result.status,
            "error": result.error,
            "cause": result.cause,
        },
        "scenario": result.scenario,
        "run": result.run,
        "notifications": [{"subject": n.get("subject"), "body": n.get("message")} for n in notifications],
        "created": {
            "jobs": list(result.created.get("jobs", [])),
            "throughputs": list(result.created.get("throughputs", [])),
            "deployments": list(result.created.get("deployments", [])),
        },
        "left_billing": {
            "throughputs": list(result.left_billing.get("throughputs", [])),
            "deployments": list(result.left_billing.get("deployments", [])),
            "running_jobs": list(result.left_billing.get("running_jobs", [])),
        },
        "reports": dict(result.reports),
        "transitions": count_transitions(result.events),
        "settled": not result.unsettled,
        "other_executions": list(result.other_executions),
        "user_actions": list(result.actions),
        "delivery_errors": list(result.delivery_errors),
        "stack_deletion": (
            {"status": deletion.stack_status, "failure": deletion.failure} if deletion is not None else None
        ),
        "endpoint": _endpoint(result.final_state),
        "followup_runs": list(result.followups),
        "job_wait": getattr(result, "job_wait", None),
        "evaluation": _evaluation(result.final_state),
    }
    return document
