"""S3 -> EventBridge -> Step Functions, as on AWS.

moto 5.2.5 sends S3 events to EventBridge rules, but in a shape that differs from AWS's
(``eTag`` instead of ``etag``, an epoch number for ``time``), without applying the target's input
transformer, and with no Step Functions target (the error is swallowed). This module replaces
that delivery: it builds the documented "Object Created" event (bedrock-facts.md §7), matches it
against every enabled rule on the default bus with moto's own pattern matcher (the one behind
``TestEventPattern``), applies each target's ``Input`` / ``InputPath`` / ``InputTransformer``,
and starts an execution of a Step Functions target with the result.

When any execution ends (succeeded, failed, aborted or timed out), its "Step Functions Execution
Status Change" event goes through the same rules, from the execution's own thread, as AWS sends it
when the execution ends; :meth:`EventRouter.settled` tells when every execution has ended and its
event has been delivered (so that what those deliveries started has had its turn too).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from moto.awslambda.utils import get_backend as lambda_backend
from moto.events.models import events_backends
from moto.s3 import notifications as s3_notifications
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "PostObject",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_sequencer = itertools.count(0x617F08299329D189)


@dataclass(frozen=True)
class Delivery:
    """One event delivered by one rule to one target."""

    rule: str
    target_arn: str
    input: Any
    execution_arn: str | None
    #: The execution whose status-change event was delivered (None for other events).
    cause: str | None = None


def object_created_event(account: str, bucket: Any, event_name: str, key: Any) -> dict[str, Any]:
    """The EventBridge event S3 sends for an object-level event (bedrock-facts.md §7)."""
    obj: dict[str, Any] = {
        "key": key.name,
        "size": key.size,
        "etag": key.etag.replace('"', ""),
        "sequencer": f"{next(_sequencer):X}",
    }
    if getattr(key, "version_id", None) not in (None, "null"):
        obj["version-id"] = key.version_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": s3_notifications._detail_type(event_name),
        "source": "aws.s3",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": bucket.region_name,
        "resources": [bucket.arn],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": _REASONS.get(event_name, event_name.rsplit(":", maxsplit=1)[-1]),
        },
    }


def _json_path(event: Any, path: str) -> tuple[bool, Any]:
    """EventBridge's JSONPath subset: dot notation and array indices."""
    node = event
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path.removeprefix("$").lstrip(".")):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return False, None
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def transform_input(target: dict[str, Any], event: dict[str, Any], rule_arn: str, rule_name: str) -> Any:
    """What EventBridge sends to ``target`` for ``event``: Input, InputPath, InputTransformer or the event.

    In an InputTransformer template, a placeholder inside a JSON string is replaced by the value's
    text; elsewhere by its JSON; a path missing from the event gives ``null``.
    """
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return _json_path(event, target["InputPath"])[1]
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    values: dict[str, tuple[bool, Any]] = {
        name: _json_path(event, path) for name, path in transformer.get("InputPathsMap", {}).items()
    }
    values["aws.events.rule-arn"] = (True, rule_arn)
    values["aws.events.rule-name"] = (True, rule_name)
    values["aws.events.event"] = (True, {k: v for k, v in event.items() if k != "detail"})
    values["aws.events.event.json"] = (True, event)
    values["aws.events.event.ingestion-time"] = (True, event.get("time"))
    template: str = transformer["InputTemplate"]
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        ch = template[i]
        match = _PLACEHOLDER.match(template, i) if ch == "<" else None
        if match and match.group(1) in values:
            found, value = values[match.group(1)]
            if in_string:
                out.append(
                    ""
                    if not found or value is None
                    else (value if isinstance(value, str) else json.dumps(value))
                )
            else:
                out.append(json.dumps(value) if found else "null")
            i = match.end()
            continue
        if ch == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        out.append(ch)
        i += 1
    text = "".join(out)
    try:
        return json.loads(text)
    except ValueError:
        return text


class EventRouter:
    """Delivers S3 events to the deployed rules' targets; records every delivery."""

    def __init__(self, on_delivery: Callable[[Delivery], None] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.on_delivery = on_delivery
        #: Executions whose end event has been delivered to every matching target.
        self.ended: set[str] = set()
        #: False while the emulation closes: executions it stops then send no event.
        self.send_execution_events = True
        self._lock = threading.Lock()
        #: S3 events held back while :meth:`held` is open: (account, region, event).
        self._held: list[tuple[str, str, dict[str, Any]]] | None = None

    def send_s3_event(self, account: str, bucket: Any, event_name: str, key: Any) -> None:
        """Replacement for ``moto.s3.notifications._send_event_bridge_message``."""
        event = object_created_event(account, bucket, event_name, key)
        if self._held is not None:
            self._held.append((account, bucket.region_name, event))
            return
        self.put_event(account, bucket.region_name, event)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the S3 events of the uploads made meanwhile, and deliver them in order when it closes.

        On AWS, S3 sends its events to EventBridge asynchronously, after the upload has returned; here
        delivery is synchronous, and an execution it starts competes with the uploads that follow (one
        Python process). Holding the events lets a burst of uploads (many runs within one second)
        complete first, as it would on AWS, each execution then starting in upload order."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for account, region, event in held:
                self.put_event(account, region, event)

    def put_event(self, account: str, region: str, event: dict[str, Any]) -> None:
        """Route ``event`` through the default bus's enabled rules."""
        self.events.append(copy.deepcopy(event))
        backend = events_backends[account][region]
        bus = backend.event_buses.get("default")
        for rule in list(bus.rules.values()) if bus else []:
            pattern = rule.event_pattern
            # A schedule rule (the hourly serving inventory) has no pattern: it matches no event.
            if rule.scheduled_expression and not pattern.get_pattern():
                continue
            if rule.state != "ENABLED" or not pattern.matches_event(copy.deepcopy(event)):  # type: ignore[arg-type]
                continue
            self._deliver_to_targets(account, region, rule, event)

    def fire_rule(self, account: str, region: str, rule: Any, event: dict[str, Any]) -> None:
        """Deliver ``event`` to ``rule``'s targets, as a schedule rule does when its time comes."""
        self.events.append(copy.deepcopy(event))
        self._deliver_to_targets(account, region, rule, event)

    def _deliver_to_targets(self, account: str, region: str, rule: Any, event: dict[str, Any]) -> None:
        """Each of ``rule``'s targets gets ``event``; a failed delivery is recorded, not raised."""
        for target in list(rule.targets):
            try:
                self._deliver(account, region, rule, target, event)
            except Exception as exc:
                # On AWS a failed delivery is retried, then goes to the target's dead-letter queue.
                message = f"rule {rule.name} -> {target['Arn']}: {type(exc).__name__}: {exc}"
                self.errors.append(message)
                print(f"[local] event delivery failed: {message}", file=sys.stderr)

    def execution_ended(self, execution: Any) -> None:
        """Send the status-change event of ``execution``, which has just ended, through the rules."""
        if not self.send_execution_events:
            return
        description = execution.to_describe_output()
        try:
            event = execution_status_event(execution.account_id, execution.region_name, description)
            self.put_event(execution.account_id, execution.region_name, event)
        finally:
            with self._lock:
                self.ended.add(str(execution.exec_arn))

    def running(self, account: str, region: str, root: str | None = None) -> list[str]:
        """Executions still running, or ended with their event not yet delivered: of any state
        machine, or with ``root`` only that execution and those its end started (transitively)."""
        backend = stepfunctions_parser_backends[account][region]
        with self._lock:
            ended = set(self.ended)
        scope = self.descendants(root) if root else None
        return [
            str(execution.exec_arn)
            for execution in backend._get_executions()
            if (scope is None or str(execution.exec_arn) in scope)
            and (_status(execution) == "RUNNING" or str(execution.exec_arn) not in ended)
        ]

    def descendants(self, root: str) -> set[str]:
        """``root`` and the executions started by the delivery of its end event, and of theirs."""
        found = {root}
        changed = True
        while changed:
            changed = False
            for delivery in list(self.deliveries):
                if delivery.cause in found and delivery.execution_arn and delivery.execution_arn not in found:
                    found.add(delivery.execution_arn)
                    changed = True
        return found

    def _deliver(
        self, account: str, region: str, rule: Any, target: dict[str, Any], event: dict[str, Any]
    ) -> None:
        payload = transform_input(target, event, rule.arn, rule.name)
        arn = target["Arn"]
        execution_arn = None
        if ":states:" in arn and ":stateMachine:" in arn:
            backend = stepfunctions_parser_backends[account][region]
            execution = backend.start_execution(
                arn, name=str(uuid.uuid4()), execution_input=json.dumps(payload)
            )
            execution_arn = execution.exec_arn
        elif ":lambda:" in arn and ":function:" in arn:
            # EventBridge invokes Lambda targets asynchronously; the result is not returned to anyone.
            response_headers: dict[str, str] = {}
            body = lambda_backend(account, region).invoke(
                arn, None, json.dumps(payload), {}, response_headers
            )
            if response_headers.get("x-amz-function-error"):
                raise RuntimeError(f"the function {arn} failed on the event: {_lambda_error(body)}")
        else:
            raise NotImplementedError("only Step Functions and Lambda targets are emulated")
        cause = (
            (event.get("detail") or {}).get("executionArn") if event.get("source") == "aws.states" else None
        )
        delivery = Delivery(
            rule=rule.name, target_arn=arn, input=payload, execution_arn=execution_arn, cause=cause
        )
        self.deliveries.append(delivery)
        if self.on_delivery:
            self.on_delivery(delivery)

    @contextlib.contextmanager
    def installed(self) -> Iterator[EventRouter]:
        """Deliver S3 events and executions' status changes through this router while the context is open."""
        router = self
        original = BaseExecutionWorkerCommunication.terminated

        def terminated(self: BaseExecutionWorkerCommunication) -> None:
            original(self)
            router.execution_ended(self.execution)

        with (
            mock.patch.object(s3_notifications, "_send_event_bridge_message", self.send_s3_event),
            mock.patch.object(BaseExecutionWorkerCommunication, "terminated", terminated),
        ):
            yield self


def _lambda_error(body: Any) -> str:
    """``errorType: errorMessage`` of a Lambda error response body."""
    try:
        error = json.loads(body.decode() if isinstance(body, bytes) else str(body))
    except ValueError:
        return str(body)
    if not isinstance(error, dict):
        return str(error)
    return f"{error.get('errorType')}: {error.get('errorMessage')}"


def _status(execution: Any) -> str:
    status = execution.exec_status
    return str(getattr(status, "value", status))


def execution_status_event(account: str, region: str, description: dict[str, Any]) -> dict[str, Any]:
    """The "Step Functions Execution Status Change" event AWS sends when an execution ends
    (shape from the Step Functions guide, "EventBridge events")."""

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

    status = description["status"]

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [description["executionArn"]],
        "detail": {
            "executionArn": description["executionArn"],
            "stateMachineArn": description["stateMachineArn"],
            "name": description.get("name"),
            "status": str(getattr(status, "value", status)),
            "startDate": millis(description.get("startDate")),
            "stopDate": millis(description.get("stopDate")),
            "input": description.get("input"),
            "output": description.get("output"),
        },
    }
