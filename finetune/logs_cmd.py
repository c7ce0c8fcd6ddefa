"""``finetune logs RUN``: the run's Lambda log lines, in order, from CloudWatch Logs.

Every pipeline handler logs with Powertools and the execution's name as its correlation id, so a
run's lines are found in the stack's log groups (the ``LogGroupNames`` output) by that name.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from finetune import runs
from finetune.output import run_command, write_json
from finetune.stack import add_stack_arguments, connect

#: Lines are cut at the terminal's width, but never narrower than this (--full prints them whole).
MIN_COLUMNS = 120
#: Log lines may be written a little before the start (clock skew) and after the end (clean-up).
MARGIN = timedelta(minutes=5)


def register(subparsers: Any) -> None:
    """Add ``logs``."""
    parser = subparsers.add_parser(
        "logs",
        help="a run's Lambda log lines, in order, from CloudWatch Logs",
        description="The log lines of the latest run of line RUN (or an execution ARN) from every log "
        "group of the stack, found by the execution's name (the handlers' correlation id). Exit "
        "status 0; 1 when the stack or the run cannot be read; 2 for usage errors.",
    )
    parser.add_argument("run", metavar="RUN", help="the run (line) name, or an execution ARN")
    parser.add_argument(
        "--full", action="store_true", help="print whole lines (default: cut at the terminal's width)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_stack_arguments(parser)
    parser.set_defaults(handler=lambda args: run_command("logs", _logs, args))


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def run_log_events(
    logs: Any, log_groups: Iterable[str], execution: runs.RunExecution
) -> list[dict[str, Any]]:
    """Every log event of the execution in ``log_groups``, oldest first."""
    start = _millis(execution.started - MARGIN)
    end = _millis((execution.stopped or datetime.now(UTC)) + MARGIN)
    found: list[dict[str, Any]] = []
    paginator = logs.get_paginator("filter_log_events")
    for group in log_groups:
        try:
            pages = paginator.paginate(
                logGroupName=group, filterPattern=f'"{execution.name}"', startTime=start, endTime=end
            )
            for page in pages:
                found += [{**event, "logGroupName": group} for event in page.get("events", [])]
        except logs.exceptions.ResourceNotFoundException:
            continue  # a group nothing has logged to yet
    found.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
    return found


#: Keys every Powertools log record carries; the others are the line's own details.
_STANDARD_KEYS = frozenset(
    {
        "level", "location", "message", "timestamp", "service", "cold_start", "function_name",
        "function_memory_size", "function_arn", "function_request_id", "correlation_id", "xray_trace_id",
        "sampling_rate",
    }
)  # fmt: skip
_FUNCTION_NAME = re.compile(r"^(?:[^-]+-)?(?P<task>.+?)(?:Function[0-9A-F]{8})?(?:-[A-Za-z0-9]{8,})?$")


def task_name(function_name: str | None) -> str | None:
    """``Stack-ValidateDatasetFunction431CF025-AH604YXVQEYF`` -> ``ValidateDataset``."""
    if not function_name:
        return None
    match = _FUNCTION_NAME.match(function_name)
    return match.group("task") if match else function_name


def describe_event(event: dict[str, Any]) -> dict[str, Any]:
    """Time, function, level, message and details of one event (Powertools JSON, or the raw line)."""
    text = str(event.get("message", "")).rstrip("\n")
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).isoformat(timespec="milliseconds")
    if not isinstance(record, dict):
        return {
            "time": stamp,
            "function": None,
            "level": None,
            "message": text,
            "details": {},
            "correlation_id": None,
            "log_group": event["logGroupName"],
        }
    message = record.get("message")
    return {
        "time": stamp,
        "function": record.get("function_name"),
        "level": record.get("level"),
        "message": message if isinstance(message, str) else json.dumps(message),
        "details": {k: v for k, v in record.items() if k not in _STANDARD_KEYS},
        "correlation_id": record.get("correlation_id"),
        "log_group": event["logGroupName"],
    }


def _logs(args: argparse.Namespace, out: TextIO) -> int:
    clients, stack = connect(args)
    execution = runs.find_run(clients("stepfunctions"), stack.state_machine_arn, args.run)
    events = [describe_event(e) for e in run_log_events(clients("logs"), stack.log_groups, execution)]
    if args.json:
        write_json(out, "logs", {"run": execution.line, "execution": execution.arn, "events": events})
        return 0
    print(
        f"Run {execution.line}: execution {execution.name} ({execution.status}), {len(events)} log lines",
        file=out,
    )
    names = [task_name(e["function"]) or e["log_group"].rsplit("/", 1)[-1] for e in events]
    width = max((len(n) for n in names), default=0)
    columns = max(MIN_COLUMNS, shutil.get_terminal_size((MIN_COLUMNS, 24)).columns)
    for event, name in zip(events, names, strict=True):
        details = " ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
            for k, v in event["details"].items()
        )
        level = (event["level"] or "").ljust(7)
        line = f"{event['time'][11:23]}  {name.ljust(width)}  {level}  {event['message']}  {details}".rstrip()
        print(line if args.full or len(line) <= columns else line[: columns - 4] + " ...", file=out)
    return 0
