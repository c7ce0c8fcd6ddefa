"""Send what each handler logged to the emulated CloudWatch Logs, as the Lambda runtime does on AWS.

Each invocation's captured output becomes one log stream (``YYYY/MM/DD/[$LATEST]<id>``) in the
function's log group: the group the template's ``LoggingConfig`` names, else ``/aws/lambda/<name>``.
So ``finetune logs`` (``FilterLogEvents``) finds a run's lines by its correlation id offline too.
Events are written into moto's backend directly, one millisecond apart, so their order is kept.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from moto.logs.models import logs_backends

from finetune.local.lambda_runtime import Invocation, LambdaRuntime
from finetune.local.template import Synthesized


class LogShipper:
    """Writes each invocation's output to its function's log group."""

    def __init__(self, synth: Synthesized, client: Callable[[str], Any]) -> None:
        self.synth = synth
        self.client = client
        self._groups: dict[str, str] | None = None

    def _log_groups(self) -> dict[str, str]:
        """Function name -> log group name, from the template and the deployed stack's resources."""
        if self._groups is None:
            cfn = self.client("cloudformation")
            pages = cfn.get_paginator("list_stack_resources").paginate(StackName=self.synth.stack_name)
            physical = {
                r["LogicalResourceId"]: r["PhysicalResourceId"]
                for page in pages
                for r in page["StackResourceSummaries"]
            }
            groups = {}
            for logical, resource in self.synth.resources_of_type("AWS::Lambda::Function").items():
                ref = (resource.get("Properties", {}).get("LoggingConfig") or {}).get("LogGroup")
                if logical in physical and isinstance(ref, dict) and ref.get("Ref") in physical:
                    groups[physical[logical]] = physical[ref["Ref"]]
            self._groups = groups
        return self._groups

    def __call__(self, invocation: Invocation) -> None:
        lines = [line for line in invocation.logs.splitlines() if line.strip()]
        if not lines:
            return
        backend = logs_backends[self.synth.account][self.synth.region]
        group = self._log_groups().get(invocation.function_name, f"/aws/lambda/{invocation.function_name}")
        if group not in backend.groups:
            backend.create_log_group(group, {})
        stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        backend.create_log_stream(group, stream)
        end = int(time.time() * 1000)
        at = min(end - int(invocation.seconds * 1000), end - len(lines))
        events = []
        for line in lines:
            # The time the handler wrote the line (Powertools' own field), else the next millisecond.
            at = max(at + 1, _written_at(line) or 0)
            events.append({"timestamp": at, "message": line})
        backend.put_log_events(group, stream, events)


def _written_at(line: str) -> int | None:
    """Milliseconds of a Powertools record's ``timestamp`` (``2026-11-28 18:06:56,693+0000``)."""
    if not line.startswith("{"):
        return None
    try:
        stamp = json.loads(line).get("timestamp")
        return int(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f%z").timestamp() * 1000)
    except (ValueError, TypeError, AttributeError):
        return None


@contextlib.contextmanager
def shipped(runtime: LambdaRuntime, shipper: LogShipper) -> Iterator[None]:
    """Ship ``runtime``'s invocations with ``shipper`` while the context is open."""
    previous = runtime.on_invocation

    def on_invocation(invocation: Invocation) -> None:
        if previous is not None:
            previous(invocation)
        shipper(invocation)

    runtime.on_invocation = on_invocation
    try:
        yield
    finally:
        runtime.on_invocation = previous
