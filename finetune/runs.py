"""Runs as Step Functions and S3 describe them: which executions belong to a line, where each one is,
and what it is waiting for. Plain logic over boto3 clients passed in (tests pass moto's).

A run's *line* is its folder name (``datasets/<line>/train.jsonl``); each upload of ``train.jsonl``
is a new *version* of the line and starts one execution, whose input carries the upload's bucket,
key and S3 version id (the trigger's input). The version number is the position of that S3 version
among the versions of ``train.jsonl``, oldest first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.layout import DATASETS_PREFIX, REPORTS_PREFIX, TRAIN_FILE
from bedrock_finetune.training_queue import QueueView, list_queue
from finetune.output import CommandFailed

#: How many executions ``status RUN`` looks through (newest first) for the line's latest one.
SEARCH_LIMIT = 500
#: The serving work's record of a line: its endpoint (``endpoint.arn``) and versions.
LINE_RECORD = "line.json"
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class RunExecution:
    """One execution of the pipeline: one version of a line."""

    arn: str
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    key: str
    version_id: str | None
    etag: str | None = None
    output: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    cause: str | None = None

    @property
    def line(self) -> str:
        """The run name: the folder of ``datasets/<line>/train.jsonl`` (the key itself otherwise)."""
        parts = self.key.split("/")
        if len(parts) == 3 and parts[0] + "/" == DATASETS_PREFIX and parts[2] == TRAIN_FILE:
            return parts[1]
        return self.key

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    def elapsed(self, now: datetime | None = None) -> float:
        end = self.stopped or now or datetime.now(UTC)
        return max(0.0, (end - self.started).total_seconds())


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "null")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe(sfn: Any, execution_arn: str) -> RunExecution:
    """DescribeExecution, read as a run."""
    d = sfn.describe_execution(executionArn=execution_arn)
    given = _json_object(d.get("input"))
    return RunExecution(
        arn=d["executionArn"],
        name=d["name"],
        status=d["status"],
        started=d["startDate"],
        stopped=d.get("stopDate"),
        key=str(given.get("key") or ""),
        version_id=given.get("versionId") or None,
        etag=str(given.get("etag") or "").strip('"') or None,
        output=_json_object(d.get("output")),
        error=d.get("error"),
        cause=d.get("cause"),
    )


def execution_summaries(sfn: Any, state_machine_arn: str, limit: int) -> Iterator[dict[str, Any]]:
    """The state machine's executions, newest first, at most ``limit``."""
    seen = 0
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        for summary in sorted(page["executions"], key=lambda e: e["startDate"], reverse=True):
            if seen >= limit:
                return
            seen += 1
            yield summary


def recent_runs(sfn: Any, state_machine_arn: str, limit: int = 20) -> list[RunExecution]:
    """The newest ``limit`` executions, described, newest first."""
    return [describe(sfn, s["executionArn"]) for s in execution_summaries(sfn, state_machine_arn, limit)]


def find_run(sfn: Any, state_machine_arn: str, run: str) -> RunExecution:
    """The latest execution of line ``run`` (or the execution ``run`` names by ARN or name)."""
    if run.startswith("arn:"):
        return describe(sfn, run)
    searched = 0
    for summary in execution_summaries(sfn, state_machine_arn, SEARCH_LIMIT):
        searched += 1
        execution = describe(sfn, summary["executionArn"])
        if run in (execution.line, execution.name):
            return execution
    latest = f"the {searched} latest executions" if searched == SEARCH_LIMIT else f"{searched} execution(s)"
    raise CommandFailed(
        f"no run {run!r} among {latest} of {state_machine_arn}: check the name with finetune runs, or "
        "start it with finetune submit"
    )


def dataset_version(s3: Any, bucket: str, execution: RunExecution) -> int | None:
    """The version number of the execution's upload among the versions of its ``train.jsonl``."""
    if not execution.version_id or not execution.key:
        return None
    newest_first: list[str] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=execution.key):
        # S3 lists the versions of a key newest first.
        newest_first += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == execution.key]
    ordered = newest_first[::-1]
    return ordered.index(execution.version_id) + 1 if execution.version_id in ordered else None


def read_report(s3: Any, bucket: str, line: str, name: str) -> dict[str, Any] | None:
    """``reports/<line>/<name>``, or None when it is not there (yet)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{REPORTS_PREFIX}{line}/{name}")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return _json_object(body.decode("utf-8"))


# ---------------------------------------------------------------------------- the history
@dataclass
class Progress:
    """What the execution history says: the states entered and the last word on each resource."""

    #: (state name, entered at), in order.
    states: list[tuple[str, datetime]] = field(default_factory=list)
    #: The latest value of each top-level field of the state (``job``, ``throughput``, ``validation``,
    #: ``training``, ``failure``...), from the states' outputs, and when it was written.
    latest: dict[str, Any] = field(default_factory=dict)
    updated: dict[str, datetime] = field(default_factory=dict)
    #: Task failures: (state, error), in order (retried or caught).
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def step(self) -> str | None:
        return self.states[-1][0] if self.states else None

    def field(self, name: str) -> dict[str, Any]:
        value = self.latest.get(name)
        return value if isinstance(value, dict) else {}


def progress(sfn: Any, execution_arn: str) -> Progress:
    """Read the whole execution history into a :class:`Progress`."""
    found = Progress()
    current = ""
    paginator = sfn.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        for event in page["events"]:
            kind = event["type"]
            if kind.endswith("StateEntered"):
                current = event["stateEnteredEventDetails"]["name"]
                found.states.append((current, event["timestamp"]))
            elif kind.endswith("StateExited"):
                output = _json_object(event["stateExitedEventDetails"].get("output"))
                for name, value in output.items():
                    if value != found.latest.get(name):
                        found.latest[name] = value
                        found.updated[name] = event["timestamp"]
            elif kind.endswith("Failed") and kind != "ExecutionFailed":
                details: dict[str, Any] = next(
                    (v for k, v in event.items() if k.endswith("FailedEventDetails")), {}
                )
                found.failures.append((current, str(details.get("error", ""))))
    return found


# ---------------------------------------------------------------------------- the training queue
def read_queue(dynamodb: Any, table: str | None) -> QueueView | None:
    """The training queue now (the stack output ``TrainingQueueTableName``), or None when the stack has
    no queue or the caller may not read it (a Reader policy from before the queue)."""
    if not table:
        return None
    try:
        return list_queue(dynamodb, table)
    except ClientError:
        return None


def queue_place(view: QueueView | None, execution_arn: str) -> dict[str, Any] | None:
    """Where one execution is in the queue: ``state`` (training, waiting or preparing), ``position``
    (1-based among the runs without a slot; None while training) and the runs ``ahead`` of it, in the
    order they get a slot. None when the run is not in the queue (not started yet, or done training)."""
    entry = view.entry(execution_arn) if view is not None else None
    if view is None or entry is None:
        return None
    return {
        "state": entry.state,
        "position": entry.position,
        "ahead": [
            {"run": e.run, "state": e.state, "executionArn": e.execution_arn}
            # A run that holds a slot has nobody ahead of it
            for e in (view.ahead_of(execution_arn) if entry.position is not None else [])
        ],
    }


def queue_summary(view: QueueView) -> str:
    """One line: the slots in use and who is in line, in order."""
    slots = f"{view.in_use} of {view.limit}" if view.limit is not None else str(view.in_use)
    line = view.in_line
    who = ", ".join(f"{e.position}. {e.label()}" for e in line) if line else "nobody waits"
    return f"Training queue: {slots} slot(s) in use; {len(line)} run(s) in line: {who}"


#: (word in the state's name, who the run waits for), first match wins; ``{status}`` is the status
#: the pipeline last read of that resource, ``{line}`` the run.
_WAITING = (
    (
        "training slot",
        "a training slot: every slot is taken, the run has its place in line (finetune runs)",
        "",
    ),
    ("deployment quota", "Bedrock's deployment quota: the run waits for it with back-off", ""),
    ("approv", "you: approve or reject the purchase (finetune approve {line} / finetune reject {line})", ""),
    ("settle", "the upload to settle (the run's other files may still be arriving)", ""),
    ("validat", "the validator", ""),
    ("endpoint", "Bedrock: the line's endpoint{status}", "endpoint"),
    ("serve", "Bedrock: the line's endpoint{status}", "endpoint"),
    ("deploy", "Bedrock: the model deployment{status}", "deployment"),
    ("job", "Bedrock: the customization job{status}", "job"),
    ("clean", "the clean-up of the failed run", ""),
)


def waiting_on(execution: RunExecution, found: Progress) -> str:
    """Who or what the run is waiting for now, in a few words."""
    if not execution.running:
        return f"nothing: the run has ended ({execution.status})"
    step = found.step or ""
    for word, text, resource in _WAITING:
        if word in step.lower():
            status = found.field(resource).get("status") if resource else None
            return text.format(line=execution.line, status=f" ({status})" if status else "")
    return f"the pipeline: {step or 'starting'}"
