"""``finetune local RUN_DIR``: upload a run folder to the emulated bucket and follow the pipeline.

The upload of ``train.jsonl`` is what starts the execution, through the deployed EventBridge rule;
this module only uploads, then follows the execution history (each state entered, each poll and
its status, elapsed real and AWS time) and prints a summary at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3

from bedrock_finetune.layout import (
    DATASETS_PREFIX,
    HYPERPARAMETERS_FILE,
    REPORTS_PREFIX,
    RUN_NAME_PATTERN,
    TRAIN_FILE,
    VALIDATION_FILE,
)
from finetune.local.cloud import Deployment, LocalCloud, StackDeletion
from finetune.local.events import Delivery, execution_status_event
from finetune.local.scenarios import Scenario
from finetune.local.template import Synthesized, synthesize
from finetune.local.timing import DEFAULT_SCALE, Clock

#: A local run that takes longer than this (real time) is reported as stuck.
MAX_RUN_SECONDS = 120.0
_POLL_STATES = {"Get customization job": "job", "Get provisioned throughput": "throughput"}


class RunFolderError(ValueError):
    """RUN_DIR is not a usable run folder."""


@dataclass
class LocalRun:
    """What happened in one local run."""

    run: str
    scenario: str
    execution_arn: str | None
    status: str
    error: str | None
    cause: str | None
    states: list[str]
    polls: dict[str, list[str]]
    task_failures: list[tuple[str, str]]
    final_state: dict[str, Any]
    notifications: list[dict[str, Any]]
    validation_report: dict[str, Any] | None
    seconds: float
    aws_seconds: float
    deployment: Deployment
    events: list[dict[str, Any]] = field(default_factory=list)
    #: With ``--destroy``: the stack's deletion after the run, and the throughputs left after it.
    deletion: StackDeletion | None = None
    throughputs_left: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def check_run_folder(run_dir: Path) -> str:
    """The run name (the folder name); raises RunFolderError when the folder cannot be a run."""
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is not a folder")
    if not (run_dir / TRAIN_FILE).is_file():
        raise RunFolderError(f"{run_dir} has no {TRAIN_FILE}; a run folder holds {TRAIN_FILE} at least")
    name = run_dir.resolve().name
    if not RUN_NAME_PATTERN.match(name):
        raise RunFolderError(
            f"run name {name!r} (the folder name) may only contain letters, digits, '.', '_' and '-'"
        )
    return name


def upload_run(cloud: LocalCloud, deployment: Deployment, run_dir: Path, run: str) -> list[str]:
    """Upload the run's files, ``train.jsonl`` last (it starts the run); returns the keys."""
    s3 = cloud.client("s3")
    keys = []
    for name in (VALIDATION_FILE, HYPERPARAMETERS_FILE, TRAIN_FILE):
        path = run_dir / name
        if path.is_file():
            key = f"{DATASETS_PREFIX}{run}/{name}"
            s3.put_object(Bucket=deployment.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
    return keys


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's history events, oldest first."""
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


class Follower:
    """Turns new history events into progress lines and collects what the summary needs."""

    def __init__(self, out: TextIO, clock: Clock) -> None:
        self.out = out
        self.clock = clock
        self.started: float | None = None
        self.seen = 0
        self.states: list[str] = []
        self.polls: dict[str, list[str]] = {"job": [], "throughput": []}
        self.task_failures: list[tuple[str, str]] = []
        self.last_output: dict[str, Any] = {}
        self._current = ""

    def _line(self, at: float, text: str) -> None:
        aws = int(self.clock.aws_time_at(at))
        elapsed = at - (self.started or at)
        stamp = f"{elapsed:6.2f}s  AWS +{aws // 3600}:{aws // 60 % 60:02d}:{aws % 60:02d}"
        print(f"  {stamp}  {text}", file=self.out, flush=True)

    def feed(self, events: list[dict[str, Any]]) -> None:
        for event in events[self.seen :]:
            kind = event["type"]
            at = event["timestamp"].timestamp()
            if self.started is None:
                self.started = at
            if kind.endswith("StateEntered"):
                name = event["stateEnteredEventDetails"]["name"]
                self.states.append(name)
                self._current = name
                self._line(at, name)
            elif kind.endswith("StateExited"):
                details = event["stateExitedEventDetails"]
                output = json.loads(details.get("output") or "{}")
                if isinstance(output, dict):
                    self.last_output = output
                    field_name = _POLL_STATES.get(details["name"])
                    if field_name:
                        status = str((output.get(field_name) or {}).get("status"))
                        self.polls[field_name].append(status)
                        self._line(at, f"    poll {len(self.polls[field_name])}: {field_name} {status}")
            elif kind in ("TaskFailed", "LambdaFunctionFailed"):
                details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
                error = (details or {}).get("error", "")
                self.task_failures.append((self._current, error))
                self._line(at, f"    {self._current} failed: {error} (the state's Retry/Catch decides)")
        self.seen = len(events)


def follow(
    cloud: LocalCloud, execution_arn: str, out: TextIO, clock: Clock
) -> tuple[dict[str, Any], Follower, list[dict[str, Any]]]:
    """Print progress until the execution ends; returns (describe_execution, follower, events)."""
    sfn = cloud.client("stepfunctions")
    follower = Follower(out, clock)
    deadline = time.time() + MAX_RUN_SECONDS
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        events = history(sfn, execution_arn)
        follower.feed(events)
        if description["status"] != "RUNNING":
            return description, follower, events
        if time.time() > deadline:
            sfn.stop_execution(executionArn=execution_arn, error="LocalRunTimeout", cause="stuck")
            raise TimeoutError(f"the execution did not finish in {MAX_RUN_SECONDS:.0f} s: {execution_arn}")
        time.sleep(0.01)


def _read_json(cloud: LocalCloud, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception:
        return None
    value = json.loads(body)
    return value if isinstance(value, dict) else None


def execute(
    synth: Synthesized,
    run_dir: Path,
    scenario: Scenario,
    out: TextIO,
    *,
    time_scale: float = DEFAULT_SCALE,
    destroy: bool = False,
) -> LocalRun:
    """Deploy ``synth`` into a fresh in-process emulation, upload ``run_dir`` and follow the run;
    with ``destroy``, delete the stack afterwards (its teardown included)."""
    run = check_run_folder(run_dir)
    clock = Clock(scale=time_scale)
    cloud = LocalCloud(synth, scenario, clock=clock)
    started = time.time()
    with cloud.in_process() as deployment:
        print(
            f"  deployed stack {deployment.stack_name} into the emulation ({time.time() - started:.1f} s)",
            file=out,
        )
        if deployment.not_emulated:
            print(
                f"  not emulated (IAM is not enforced locally; the preflight checks a real account): "
                f"{', '.join(deployment.not_emulated)}",
                file=out,
            )
        keys = upload_run(cloud, deployment, run_dir, run)
        print(
            f"  uploaded {', '.join(k.rsplit('/', 1)[1] for k in keys)} to "
            f"s3://{deployment.bucket}/{DATASETS_PREFIX}{run}/",
            file=out,
        )
        result = follow_delivery(cloud, deployment, started_execution(cloud), out)
        if destroy:
            result.deletion = cloud.destroy(deployment)
            summaries = cloud.client("bedrock").list_provisioned_model_throughputs()[
                "provisionedModelSummaries"
            ]
            result.throughputs_left = [pt["provisionedModelArn"] for pt in summaries]
            print(f"  deleted stack {deployment.stack_name}: {result.deletion.stack_status}", file=out)
        return result


def started_execution(cloud: LocalCloud) -> Delivery:
    """The one execution the upload of train.jsonl started (an error if it started none or several)."""
    deliveries = [d for d in cloud.router.deliveries if d.execution_arn]
    if len(deliveries) != 1:
        raise RuntimeError(
            f"uploading {TRAIN_FILE} started {len(deliveries)} executions, expected 1: "
            f"{'; '.join(cloud.router.errors) or 'no rule matched'}"
        )
    return deliveries[0]


def follow_delivery(cloud: LocalCloud, deployment: Deployment, delivery: Delivery, out: TextIO) -> LocalRun:
    """Follow the execution ``delivery`` started to its end; returns what happened."""
    started = time.time()
    execution_arn = str(delivery.execution_arn)
    key = str((delivery.input or {}).get("key", "")) if isinstance(delivery.input, dict) else ""
    run = key.split("/")[1] if key.count("/") == 2 else key
    print(f"  {key} -> rule {delivery.rule} -> execution {execution_arn.rsplit(':', 1)[1]}", file=out)
    description, follower, events = follow(cloud, execution_arn, out, cloud.clock)
    publish_execution_ended(cloud, deployment, description)
    final = json.loads(description.get("output") or "null") or follower.last_output
    report = _read_json(cloud, deployment.bucket, f"{REPORTS_PREFIX}{run}/validation.json")
    return LocalRun(
        run=run,
        scenario=cloud.scenario.name,
        execution_arn=execution_arn,
        status=description["status"],
        error=description.get("error"),
        cause=description.get("cause"),
        states=follower.states,
        polls=follower.polls,
        task_failures=follower.task_failures,
        final_state=final if isinstance(final, dict) else {},
        notifications=deployment.notifications(),
        validation_report=report,
        seconds=time.time() - started,
        aws_seconds=cloud.clock.aws_seconds,
        deployment=deployment,
        events=events,
    )


def publish_execution_ended(cloud: LocalCloud, deployment: Deployment, description: dict[str, Any]) -> None:
    """Send the execution's status-change event through the deployed rules, as AWS does when an
    execution ends (the OnExecutionEnded rule acts on TIMED_OUT and ABORTED)."""
    event = execution_status_event(deployment.account, deployment.region, description)
    cloud.router.put_event(deployment.account, deployment.region, event)


def _rows(result: LocalRun) -> Iterator[tuple[str, Any]]:
    state = result.final_state
    validation = state.get("validation") or {}
    job = state.get("job") or {}
    training = state.get("training") or {}
    pt = state.get("throughput") or {}
    report = result.validation_report or {}
    yield "Run", result.run
    yield "Scenario", result.scenario
    yield "Execution", f"{result.status}  {result.execution_arn}"
    if validation:
        records = validation.get("records") or {}
        yield (
            "Validation",
            (
                "valid; records: "
                + ", ".join(f"{k} {v}" for k, v in records.items() if v is not None)
                + f"; warnings: {validation.get('warnings')}"
                + f"; estimated tokens: {validation.get('estimatedTokens')}"
                + f" (billable {validation.get('estimatedBillableTokens')})"
            ),
        )
    elif report:
        counts = report.get("error_counts") or {}
        yield "Validation", f"INVALID: {sum(counts.values())} error(s) {counts}"
        for issue in (report.get("errors") or [])[:5]:
            where = f"{issue.get('file')}:{issue.get('line')}" if issue.get("line") else issue.get("file")
            yield "", f"{where} {issue.get('code')} {issue.get('message')}"
    yield (
        "Validation report",
        validation.get("reportUri")
        or (f"s3://{result.deployment.bucket}/reports/{result.run}/validation.json" if report else None),
    )
    yield "Customization job", f"{job.get('jobArn')}  ({job.get('status')})" if job.get("jobArn") else None
    if training:
        yield "Training loss", training.get("finalTrainingLoss")
        yield "Validation loss", training.get("finalValidationLoss")
    yield "Custom model", job.get("outputModelArn") or None
    if pt.get("provisionedModelArn"):
        yield "Provisioned model", f"{pt.get('provisionedModelArn')}  ({pt.get('status')})"
    yield "Clean-up", (state.get("cleanup") or {}).get("summary")
    if result.error:
        yield "Error", result.error
        yield "Cause", result.cause
    for note in result.notifications:
        yield "Notification", note["subject"]
    deletion = result.deletion
    if deletion is not None:
        yield "Stack deletion", deletion.stack_status
        if deletion.failure:
            yield "", deletion.failure
        for note in deletion.notifications:
            yield "Teardown", note["subject"]
            for line in note["message"].splitlines():
                yield "", line
        yield "Throughput left", ", ".join(result.throughputs_left) or "none"
    yield "Total time", f"{result.seconds:.2f} s (about {_duration(result.aws_seconds)} of waiting on AWS)"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def print_summary(result: LocalRun, out: TextIO) -> None:
    """The end-of-run summary."""
    print("", file=out)
    print("Summary", file=out)
    for label, value in _rows(result):
        if value not in (None, ""):
            print(f"  {label + (':' if label else ''):<20}{value}", file=out)


#: The services the deployment, the handlers and the runner talk to.
SERVICES = ("s3", "bedrock", "sns", "stepfunctions", "cloudformation", "ssm", "lambda", "events", "sqs")


def warm_up() -> None:
    """Load botocore's service models (cached by the default session) before they are needed."""
    for service in SERVICES:
        boto3.client(service, region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106


def run_local(
    run_dir: Path,
    scenario: Scenario,
    out: TextIO | None = None,
    *,
    time_scale: float = DEFAULT_SCALE,
    destroy: bool = False,
    context: dict[str, str] | None = None,
) -> LocalRun:
    """``finetune local``: synthesize, deploy, upload, follow, (destroy,) summarize (to stdout by default).

    ``context`` is configuration on top of cdk.json, as ``cdk synth -c key=value`` gives it.
    """
    out = out or sys.stdout
    run = check_run_folder(run_dir)
    print(f"Local run {run!r}, scenario {scenario.name}: {scenario.description}", file=out)
    started = time.time()
    # Synthesis mostly waits on the CDK's Node process; load the emulation meanwhile.
    warm = threading.Thread(target=warm_up, daemon=True)
    warm.start()
    with tempfile.TemporaryDirectory(prefix="finetune-local-") as outdir:
        synth = synthesize(Path(outdir), **(context or {}))
        warm.join()
        print(f"  synthesized {synth.stack_name} with cdk-nag ({time.time() - started:.1f} s)", file=out)
        result = execute(synth, run_dir, scenario, out, time_scale=time_scale, destroy=destroy)
    result.seconds = time.time() - started
    print_summary(result, out)
    return result
