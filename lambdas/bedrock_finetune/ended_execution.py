"""After an execution that timed out or was aborted: clean up what its run started, and tell people.

A failure inside the state machine runs its own clean-up chain; an aborted or timed-out execution
cannot, so the ``OnExecutionEnded`` rule invokes the CleanUpEndedExecution task, whose use case is here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.layout import InvalidRunKey
from bedrock_finetune.notifications import failure_notice, links_for, publish, run_record
from bedrock_finetune.reports import write_json
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import NotifySettings

#: The error each end status reports (and the notice's wording, see notifications).
_ERRORS = {"TIMED_OUT": "ExecutionTimedOut", "ABORTED": "ExecutionAborted"}


def execution_input(
    detail: Mapping[str, Any], describe_execution: Callable[[str], Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The execution's input from the event, or from DescribeExecution when EventBridge dropped it
    (it does above 248 KB; Standard workflows keep it)."""
    parsed = json.loads(detail.get("input") or "null")
    if not parsed:
        parsed = json.loads(describe_execution(str(detail["executionArn"]))["input"] or "null")
    return parsed if isinstance(parsed, dict) else None


def clean_up_ended_execution(
    bedrock: Any,
    s3: Any,
    sns: Any,
    settings: NotifySettings,
    *,
    detail: Mapping[str, Any],
    describe_execution: Callable[[str], Mapping[str, Any]],
) -> dict[str, Any]:
    """Stop the run's job, delete its no-commitment throughput, write run.json and publish the notice.

    Returns the clean-up result (with ``summary``); an execution whose input names no run has
    nothing to clean up.
    """
    execution_arn, status = str(detail["executionArn"]), str(detail["status"])
    try:
        run = RunRef.from_execution_input(execution_input(detail, describe_execution) or {})
    except (InvalidRunKey, KeyError) as exc:
        return {"summary": f"no run in the execution input ({exc}); nothing to clean up"}
    result = clean_up_run(bedrock, run.names)
    state = {
        "run": run.to_state(),
        "failure": {
            "step": "Execution",
            "error": _ERRORS.get(status, status),
            "cause": f"The execution ended with status {status} before the run finished.",
        },
        "cleanup": result,
    }
    notice = failure_notice(state, links_for(settings), execution_arn)
    record = run_record(state, "failed", execution_arn, notice)
    write_json(s3, run.bucket, run.location.run_record_key, record)
    publish(sns, settings.topic_arn, notice, "failed", run.run)
    return result
