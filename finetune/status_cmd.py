"""``finetune runs`` and ``finetune status RUN [--follow]``: where runs are, and what they wait for."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from bedrock_finetune.training_queue import QueueView
from finetune import curves, runs
from finetune.output import UsageError, run_command, write_json
from finetune.stack import Clients, PipelineStack, add_stack_arguments, connect

#: Seconds between looks with --follow (and submit --wait).
FOLLOW_INTERVAL = 5.0
#: The pricing module another part of the app may provide; without it, no cost is shown.
PRICING_MODULE = "bedrock_finetune.pricing"


def register(subparsers: Any) -> None:
    """Add ``runs`` and ``status``."""
    listing = subparsers.add_parser(
        "runs",
        help="recent runs of the deployed pipeline, one line each",
        description="The most recent runs, newest first: line, version, status, step, started, model "
        "and endpoint. Exit status 0, 1 when the stack cannot be read, 2 for usage errors.",
    )
    listing.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    listing.add_argument("--json", action="store_true", help="print one JSON document")
    add_stack_arguments(listing)
    listing.set_defaults(handler=lambda args: run_command("runs", _runs, args))

    status = subparsers.add_parser(
        "status",
        help="where a run is: step, job, training progress, what it waits for",
        description="The latest run of line RUN (or an execution ARN): the current step, the "
        "customization job's status, elapsed time, training progress from Bedrock's metrics CSVs, "
        "and who the run waits for. With --follow, updated in place until the run ends; the exit "
        "status is then 0 when the run succeeded and 1 when it did not.",
    )
    status.add_argument("run", metavar="RUN", help="the run (line) name, or an execution ARN")
    status.add_argument("--follow", action="store_true", help="keep updating until the run ends")
    status.add_argument(
        "--interval",
        type=float,
        default=FOLLOW_INTERVAL,
        help=f"seconds between looks (default {FOLLOW_INTERVAL:g})",
    )
    status.add_argument(
        "--json", action="store_true", help="print one JSON document (with --follow: at the end)"
    )
    add_stack_arguments(status)
    status.set_defaults(handler=lambda args: run_command("status", _status, args))


# ---------------------------------------------------------------------------- runs
def _short(arn: str | None) -> str:
    return "-" if not arn else arn.rsplit("/", 1)[-1]


def _last_step(sfn: Any, execution_arn: str) -> str | None:
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=25)["events"]
    # The newest by id: whatever order the service returns them in.
    entered = [e for e in events if e["type"].endswith("StateEntered")]
    return max(entered, key=lambda e: e["id"])["stateEnteredEventDetails"]["name"] if entered else None


def endpoint_of(line_record: Mapping[str, Any] | None, execution: runs.RunExecution) -> str | None:
    """The line's endpoint (the serving work's line record) or the run's provisioned throughput."""
    endpoint = (line_record or {}).get("endpoint")
    if isinstance(endpoint, dict) and endpoint.get("arn"):
        return str(endpoint["arn"])
    served = execution.output.get("endpoint")
    return str(served["endpointArn"]) if isinstance(served, dict) and served.get("endpointArn") else None


def read_queue(clients: Clients, stack: PipelineStack) -> QueueView | None:
    """The stack's training queue now (None without one)."""
    return runs.read_queue(clients("dynamodb"), stack.queue_table) if stack.queue_table else None


def list_runs(
    clients: Clients, stack: PipelineStack, limit: int, queue: QueueView | None = None
) -> list[dict[str, Any]]:
    """The rows of ``finetune runs``; ``queue`` gives each queued run its place (``queue`` key)."""
    sfn, s3 = clients("stepfunctions"), clients("s3")
    lines: dict[str, dict[str, Any] | None] = {}
    rows = []
    for execution in runs.recent_runs(sfn, stack.state_machine_arn, limit):
        line = execution.line
        if line not in lines:
            lines[line] = runs.read_report(s3, stack.bucket, line, runs.LINE_RECORD)
        job = execution.output.get("job") if isinstance(execution.output.get("job"), dict) else {}
        rows.append(
            {
                "line": line,
                "version": runs.dataset_version(s3, stack.bucket, execution),
                "status": execution.status,
                "step": _last_step(sfn, execution.arn),
                "started": execution.started.isoformat(),
                "model": (job or {}).get("outputModelArn") or None,
                "endpoint": endpoint_of(lines[line], execution),
                "execution": execution.arn,
                "queue": runs.queue_place(queue, execution.arn) if execution.running else None,
            }
        )
    return rows


def _place(queued: Mapping[str, Any] | None) -> str:
    """A run's place in the training queue, in a few words."""
    if not queued:
        return "-"
    if queued["state"] == "training":
        return "training"
    return f"#{queued['position']} {'waiting' if queued['state'] == 'waiting' else 'checking data'}"


def _runs(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    clients, stack = connect(args)
    queue = read_queue(clients, stack)
    rows = list_runs(clients, stack, args.limit, queue)
    if args.json:
        write_json(
            out, "runs", {"stack": stack.name, "runs": rows, "queue": queue.to_dict() if queue else None}
        )
        return 0
    if not rows:
        print(f"No runs yet in {stack.name}: start one with finetune submit RUN_DIR", file=out)
        return 0
    table = [("LINE", "VERSION", "STATUS", "STEP", "QUEUE", "STARTED", "MODEL", "ENDPOINT")]
    for row in rows:
        table.append(
            (
                row["line"],
                f"v{row['version']}" if row["version"] else "-",
                row["status"],
                row["step"] or "-",
                _place(row["queue"]),
                datetime.fromisoformat(row["started"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                _short(row["model"]),
                _short(row["endpoint"]),
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip(), file=out)
    if queue is not None and (queue.in_use or queue.in_line):
        print("", file=out)
        print(runs.queue_summary(queue), file=out)
    return 0


# ---------------------------------------------------------------------------- status
def duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _expected_steps(validation: Mapping[str, Any], job: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(epochs, steps) training will take, when the records and batch size are known."""
    hp = job.get("hyperparameters") or validation.get("hyperparameters") or {}
    records = (validation.get("records") or {}).get("train")
    try:
        epochs = int(float(hp["epochCount"])) if "epochCount" in hp else None
        batch = int(float(hp["batchSize"])) if "batchSize" in hp else None
    except (TypeError, ValueError):
        return None, None
    if not (epochs and batch and records):
        return epochs, None
    return epochs, math.ceil(int(records) / batch) * epochs


def cost(validation: Mapping[str, Any]) -> dict[str, Any]:
    """The cost so far and the estimate, where this version can price them."""
    import importlib  # noqa: PLC0415

    tokens = validation.get("estimatedBillableTokens")
    try:
        importlib.import_module(PRICING_MODULE)
    except ModuleNotFoundError:
        return {
            "available": False,
            "reason": f"this version has no price list ({PRICING_MODULE})",
            "estimated_billable_tokens": tokens,
        }
    return {
        "available": False,
        "reason": f"{PRICING_MODULE} is installed but this command does not read it yet",
        "estimated_billable_tokens": tokens,
    }


def status_document(clients: Clients, stack: PipelineStack, execution: runs.RunExecution) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data."""
    sfn, s3 = clients("stepfunctions"), clients("s3")
    found = runs.progress(sfn, execution.arn)
    job, endpoint, validation = found.field("job"), found.field("endpoint"), found.field("validation")
    training: dict[str, Any] | None = None
    if job.get("jobArn"):
        read = curves.read_curves(s3, stack.bucket, f"outputs/{execution.line}/", str(job["jobArn"]))
        epochs, steps = _expected_steps(validation, job)
        training = {
            "steps_done": read.steps,
            "epochs_seen": len({p.epoch for p in read.training}),
            "expected_steps": steps,
            "expected_epochs": epochs,
            "last_training_loss": read.training[-1].loss if read.training else None,
            "last_validation_loss": read.validation[-1].loss if read.validation else None,
            "metrics_files": {"training": read.training_uri, "validation": read.validation_uri},
        }
    line_record = runs.read_report(s3, stack.bucket, execution.line, runs.LINE_RECORD)
    polled = found.updated.get("job")
    queue = read_queue(clients, stack) if execution.running else None
    queued = runs.queue_place(queue, execution.arn)
    if queue is not None and queued is not None:
        queued = {**queued, "slots": queue.limit, "inUse": queue.in_use, "length": len(queue.in_line)}
    return {
        "run": execution.line,
        "version": runs.dataset_version(s3, stack.bucket, execution),
        "execution": {
            "arn": execution.arn,
            "status": execution.status,
            "started": execution.started.isoformat(),
            "stopped": execution.stopped.isoformat() if execution.stopped else None,
            "error": execution.error,
            "cause": execution.cause,
        },
        "step": found.step,
        "elapsed_seconds": round(execution.elapsed(), 1),
        "job": {
            "arn": job.get("jobArn"),
            "status": job.get("status"),
            "read_at": polled.isoformat() if polled else None,
        },
        "custom_model": job.get("outputModelArn") or None,
        # The line's endpoint as the run last read it (a throughput or an on-demand deployment)
        "throughput": {"arn": endpoint.get("endpointArn"), "status": endpoint.get("status")},
        "endpoint": endpoint_of(line_record, execution),
        "training": training,
        "cost": cost(validation),
        "waiting_on": runs.waiting_on(execution, found),
        "retried_or_caught": [{"state": s, "error": e} for s, e in found.failures],
        # Its place in the training queue (None when it is not in line nor training)
        "queue": queued,
    }


def render_status(doc: Mapping[str, Any]) -> list[str]:
    """The readable form of :func:`status_document`."""
    execution = doc["execution"]
    version = f" v{doc['version']}" if doc.get("version") else ""
    lines = [
        f"Run {doc['run']}{version}: {execution['status']}, step {doc['step'] or '-'}, "
        f"{duration(doc['elapsed_seconds'])} elapsed",
        f"  execution   {execution['arn']}",
    ]
    job = doc["job"]
    if job["arn"]:
        if job["status"]:
            state = f"{job['status']} (as the pipeline last read it, at {job['read_at'][11:19]})"
        else:
            state = "started (the run waits for it to end)"
        lines.append(f"  job         {state}  {job['arn']}")
    training = doc.get("training")
    if training:
        if training["steps_done"]:
            of_steps = f"/{training['expected_steps']}" if training["expected_steps"] else ""
            of_epochs = f"/{training['expected_epochs']}" if training["expected_epochs"] else ""
            losses = f"training loss {training['last_training_loss']:.4f}"
            if training["last_validation_loss"] is not None:
                losses += f", validation loss {training['last_validation_loss']:.4f}"
            lines.append(
                f"  training    step {training['steps_done']}{of_steps}, epoch "
                f"{training['epochs_seen']}{of_epochs}; {losses}"
            )
        else:
            lines.append("  training    no metrics yet (Bedrock writes them as the job trains)")
    if doc.get("custom_model"):
        lines.append(f"  model       {doc['custom_model']}")
    if doc["throughput"]["arn"]:
        lines.append(f"  throughput  {doc['throughput']['status']}  {doc['throughput']['arn']}")
    if doc.get("endpoint"):
        lines.append(f"  endpoint    {doc['endpoint']}")
    spend = doc["cost"]
    tokens = spend.get("estimated_billable_tokens")
    lines.append(
        "  cost        "
        + (f"about {tokens:,} billable training tokens; " if isinstance(tokens, int) else "")
        + (spend.get("reason") or "")
    )
    queued = doc.get("queue")
    if queued:
        lines.append(f"  queue       {_queue_line(queued)}")
    lines.append(f"  waiting on  {doc['waiting_on']}")
    if execution.get("error"):
        lines.append(f"  error       {execution['error']}: {execution.get('cause') or ''}")
    return lines


def _queue_line(queued: Mapping[str, Any]) -> str:
    slots = f"{queued['inUse']} of {queued['slots']}" if queued.get("slots") is not None else queued["inUse"]
    if queued["state"] == "training":
        return f"holds a training slot ({slots} in use)"
    ahead = queued["ahead"]
    before = ", ".join(e["run"] for e in ahead) if ahead else "nobody"
    what = "waiting for a training slot" if queued["state"] == "waiting" else "in line (checking its data)"
    return (
        f"{what}: position {queued['position']} of {queued['length']}; ahead: {before}; {slots} slots in use"
    )


def follow(
    clients: Clients,
    stack: PipelineStack,
    execution: runs.RunExecution,
    out: TextIO,
    *,
    interval: float = FOLLOW_INTERVAL,
    quiet: bool = False,
) -> dict[str, Any]:
    """Show the status until the run ends; returns the last document.

    On a terminal the block is redrawn in place; otherwise a line is printed when the step or a
    status changes. ``quiet``: print nothing (``--json``).
    """
    sfn = clients("stepfunctions")
    tty = out.isatty() and not quiet
    drawn = 0
    last_key: tuple[Any, ...] | None = None
    while True:
        execution = runs.describe(sfn, execution.arn)
        doc = status_document(clients, stack, execution)
        if tty:
            lines = render_status(doc)
            if drawn:
                out.write(f"\x1b[{drawn}F\x1b[J")
            out.write("\n".join(lines) + "\n")
            out.flush()
            drawn = len(lines)
        elif not quiet:
            key = (doc["step"], doc["job"]["status"], doc["throughput"]["status"], execution.status)
            if key != last_key:
                detail = ", ".join(f"{k} {v}" for k, v in (("job", key[1]), ("throughput", key[2])) if v)
                stamp = f"{duration(doc['elapsed_seconds']):>14}"
                print(
                    f"  {stamp}  {doc['step'] or '-'}" + (f"  ({detail})" if detail else ""),
                    file=out,
                    flush=True,
                )
                last_key = key
        if not execution.running:
            if not tty and not quiet:
                print("", file=out)
                print("\n".join(render_status(doc)), file=out)
            return doc
        time.sleep(interval)


def _status(args: argparse.Namespace, out: TextIO) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds")
    clients, stack = connect(args)
    execution = runs.find_run(clients("stepfunctions"), stack.state_machine_arn, args.run)
    if args.follow:
        doc = follow(clients, stack, execution, out, interval=args.interval, quiet=args.json)
        if args.json:
            write_json(out, "status", doc)
        return 0 if doc["execution"]["status"] == "SUCCEEDED" else 1
    doc = status_document(clients, stack, execution)
    if args.json:
        write_json(out, "status", doc)
    else:
        print("\n".join(render_status(doc)), file=out)
    return 0
