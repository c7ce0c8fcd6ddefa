"""The events the handlers receive, as Powertools event data classes: no dict digging in handlers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.common import DictWrapper

from bedrock_finetune.run_ref import RunRef


class TaskEvent(DictWrapper):
    """A state-machine task's payload: the fields its state passes, plus the execution's ARN and name."""

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
