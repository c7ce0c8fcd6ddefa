"""The events the handlers receive, as Powertools event data classes: no dict digging in handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.data_classes.common import DictWrapper

from bedrock_finetune.run_ref import RunRef

#: The keys :func:`run_log_keys` puts on every log line of an invocation about a run.
RUN_LOG_KEYS = ("run", "line", "version", "execution")


class TaskEvent(DictWrapper):
    """A state-machine task's payload: the fields its state passes, plus the run and the execution's ARN
    and name."""

    @property
    def run(self) -> RunRef:
        return RunRef.from_state(self["run"])

    @property
    def execution_arn(self) -> str:
        return str(self["executionArn"])

    @property
    def validation(self) -> dict[str, Any]:
        return dict(self.get("validation") or {})

    @property
    def job(self) -> dict[str, Any]:
        return dict(self["job"])

    @property
    def throughput(self) -> dict[str, Any]:
        return dict(self["throughput"])

    @property
    def outcome(self) -> str:
        """Notify: ``succeeded`` or ``failed``."""
        return str(self["outcome"])

    @property
    def state(self) -> dict[str, Any]:
        """Notify: the whole execution state."""
        return dict(self["state"])

    @property
    def previous(self) -> dict[str, Any]:
        """Clean-up: the result of the attempt before this one (``{"attempt": 0}`` at first)."""
        return dict(self.get("previous") or {})

    @property
    def detail(self) -> dict[str, Any]:
        """Clean-up of an ended execution: the "Execution Status Change" event's detail."""
        return dict(self["detail"])


def run_log_keys(event: Any) -> dict[str, str]:
    """What every log line of an invocation says about the run it serves.

    ``run`` and ``line`` (the run folder: a line's name), ``version`` (the uploaded train.jsonl's version
    id, or its etag) and ``execution`` (the ARN of the run's execution; for the clean-up of an ended
    execution, that execution's, not the clean-up machine's). A task's payload carries ``run`` (Notify:
    ``state.run``) and ``executionArn``; a key the event does not carry is left out (custom resources
    carry none).
    """
    if not isinstance(event, Mapping):
        return {}
    keys: dict[str, str] = {}
    state = event.get("state")
    run_state = event.get("run") or (state.get("run") if isinstance(state, Mapping) else None)
    if isinstance(run_state, Mapping):
        try:
            run = RunRef.from_state(run_state)
        except KeyError:
            run = None
        if run is not None:
            keys["run"] = keys["line"] = run.run
            if run.version:
                keys["version"] = run.version
    execution = _detail(event).get("executionArn") or event.get("executionArn")
    if execution:
        keys["execution"] = str(execution)
    return keys


def execution_name(event: Any) -> str | None:
    """The correlation id: the name of the run's execution (of the ended execution, for its clean-up)."""
    if not isinstance(event, Mapping):
        return None
    name = _detail(event).get("name") or event.get("executionName")
    return str(name) if name else None


def _detail(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The "Execution Status Change" detail the clean-up of an ended execution receives, or nothing."""
    detail = event.get("detail")
    return detail if isinstance(detail, Mapping) else {}
