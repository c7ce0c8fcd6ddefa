"""After an execution that timed out, was aborted, or failed outside its own failure chain: clean up
what its run started, attempt after attempt while a throughput settles, for the notice that follows.

A failure inside the state machine runs its own clean-up chain and ends in a Fail state; everything
else (an abort, a timeout, a failure the chain never saw, such as the 25,000-event history limit)
reaches the ``CleanUpMachine``, which calls :func:`clean_up_ended_execution` until nothing settles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bedrock_finetune.bedrock_jobs import find_job
from bedrock_finetune.cleanup import Slot, clean_up_run
from bedrock_finetune.naming import evaluation_deployment_name
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import CleanUpSettings

#: The error each end status reports (and the notice's wording, see notifications).
_ERRORS = {"TIMED_OUT": "ExecutionTimedOut", "ABORTED": "ExecutionAborted", "FAILED": "ExecutionFailed"}
#: An abort can race an in-flight "Create provisioned throughput": the throughput may appear after the
#: first look. So an ended execution is always looked at again once, after one wait.
MIN_ATTEMPTS = 2


def ended_in_a_fail_state(history: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the last events of a FAILED execution show one of its Fail states: the run's own
    failure chain (or its "notification not sent" ends) already handled it."""
    return any(event.get("type") == "FailStateEntered" for event in history)


def clean_up_ended_execution(
    bedrock: Any,
    last_events: Callable[[str], Iterable[Mapping[str, Any]]],
    settings: CleanUpSettings,
    *,
    run: RunRef,
    detail: Mapping[str, Any],
    previous: Mapping[str, Any],
    slot: Slot | None = None,
) -> dict[str, Any]:
    """One clean-up attempt for the ended execution ``detail`` (an EventBridge status-change detail).

    Returns :func:`clean_up_run`'s result with the ``failure`` to report, or ``{"handled": true}``
    when a FAILED execution went through its own failure chain (nothing to do, nothing to say; a
    training slot its chain could not give back is given back here, quietly).
    """
    execution_arn, status = str(detail["executionArn"]), str(detail["status"])
    if status == "FAILED" and ended_in_a_fail_state(last_events(execution_arn)):
        if slot is not None:
            job = find_job(bedrock, run.names.job_name)
            slot.give_back(str(job.get("status")) if job else None)
        return {"handled": True, "summary": "the run's own failure chain cleaned up and reported"}
    result = clean_up_run(
        bedrock,
        run.names,
        line=run.line,
        evaluation_deployment=evaluation_deployment_name(run.line, run.identity),
        execution_arn=execution_arn,
        previous=previous,
        max_attempts=settings.max_attempts,
        min_attempts=MIN_ATTEMPTS,
        slot=slot,
    )
    result["failure"] = {
        "step": "Execution",
        "error": _ERRORS.get(status, status),
        "cause": f"The execution ended with status {status} before the run finished.",
    }
    return result
