"""``finetune local RUN_DIR``: upload a run folder to the emulated bucket and follow the pipeline.

The upload of ``train.jsonl`` is what starts the execution, through the deployed EventBridge rule;
this module only uploads, then follows the execution history (each state entered, each poll and
its status, elapsed real and AWS time), acts as the scenario's user would (stop the execution,
upload again), waits until what the execution's end set off has settled, and prints a summary (or,
with ``--json``, the document of :mod:`finetune.local.summary`) at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3

from bedrock_finetune.evaluation import parse_prompts
from bedrock_finetune.job_wait import JOB_END_ERRORS
from bedrock_finetune.layout import (
    DATASETS_PREFIX,
    EVALUATION_FILE,
    REPORTS_PREFIX,
    TRAIN_FILE,
    VALIDATION_FILE,
)
from finetune import run_folder
from finetune.local import runtime as bedrock_runtime
from finetune.local.cloud import Deployment, LocalCloud, StackDeletion
from finetune.local.events import Delivery
from finetune.local.gate import WaitGate
from finetune.local.scenarios import Scenario
from finetune.local.summary import created, left_billing, report_summaries
from finetune.local.synth_cache import synthesize_cached as synthesize
from finetune.local.template import Synthesized
from finetune.local.timing import DEFAULT_SCALE, Clock

#: A local run that takes longer than this (real time) is reported as stuck.
MAX_RUN_SECONDS = 120.0
#: How long (real time) the runner waits, after the execution ended, for what its end set off.
SETTLE_SECONDS = 60.0
#: The states whose output reports a status: the job's when its end wakes the run, the endpoint's at
#: each look.
_POLL_STATES = {"Wait for the job to end": "job", "Get endpoint status": "endpoint"}
#: The job's status, from the error a job that ended without a model fails the wait with.
_JOB_END_STATUS = {error: status for status, error in JOB_END_ERRORS.items()}
WAIT_FOR_JOB_STATE = "Wait for the job to end"
APPROVAL_STATE = "Request approval"
SETTLE_STATE = "Let uploads settle"


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
    #: Executions (of any state machine) still running, or whose end had not been delivered, when
    #: the runner stopped waiting for the emulation to settle (empty: it settled).
    unsettled: list[str] = field(default_factory=list)
    #: What is left billing in the emulated Bedrock once settled (``summary.left_billing``).
    left_billing: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: Runs the scenario's user started after the first (``second-version``): arn, status, endpoint.
    followups: list[dict[str, Any]] = field(default_factory=list)
    #: Every job and throughput created in the emulated Bedrock, once settled (``summary.created``).
    created: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: Each report under reports/ once settled: key -> short summary (``summary.report_summaries``).
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The other executions the run's events started (a second upload's run, a clean-up's state
    #: machine): ``{"arn", "stateMachine", "status"}`` each, in start order.
    other_executions: list[dict[str, str]] = field(default_factory=list)
    #: Event deliveries that failed (a rule's target raised), as the router recorded them.
    delivery_errors: list[str] = field(default_factory=list)
    #: What the scenario's user did during the run, in order.
    actions: list[str] = field(default_factory=list)
    #: How the run's wait for its job ended (``job_wait_summary``), or None if it never waited.
    job_wait: dict[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def check_run_folder(run_dir: Path) -> str:
    """The run name (the folder name, by the rule ``validate`` and ``submit`` use); raises
    RunFolderError when the folder cannot be a run."""
    try:
        return run_folder.check_run_folder(run_dir)
    except run_folder.RunNameError as exc:
        raise RunFolderError(str(exc)) from exc


def upload_run(cloud: LocalCloud, deployment: Deployment, run_dir: Path, run: str) -> list[str]:
    """Upload the run's files, ``train.jsonl`` last (it starts the run); returns the keys."""
    s3 = cloud.client("s3")
    keys = []
    bedrock_runtime.register_references(evaluation_references(run_dir))
    for name in run_folder.UPLOAD_ORDER:
        path = run_dir / name
        if path.is_file():
            key = f"{DATASETS_PREFIX}{run}/{name}"
            s3.put_object(Bucket=deployment.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
    return keys


def evaluation_references(run_dir: Path) -> dict[str, str]:
    """The run folder's evaluation prompts (``evaluation.jsonl``, else ``validation.jsonl``) and their
    references, for the emulated models' scenario quality; none when the files do not parse."""
    for name in (EVALUATION_FILE, VALIDATION_FILE):
        path = run_dir / name
        if path.is_file():
            try:
                prompts = parse_prompts(path.read_text(encoding="utf-8").splitlines())
            except ValueError:
                return {}
            return {p.text: p.reference for p in prompts if p.reference is not None}
    return {}


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
        self.polls: dict[str, list[str]] = {"job": [], "throughput": [], "endpoint": []}
        self.task_failures: list[tuple[str, str]] = []
        self.last_output: dict[str, Any] = {}
        self._current = ""

    def _line(self, at: float, text: str) -> None:
        aws = int(self.clock.aws_time_at(at))
        elapsed = at - (self.started or at)
        stamp = f"{elapsed:6.2f}s  AWS +{aws // 3600}:{aws // 60 % 60:02d}:{aws % 60:02d}"
        print(f"  {stamp}  {text}", file=self.out, flush=True)

    def _polled(self, at: float, field_name: str, status: str, polled: dict[str, Any]) -> None:
        self.polls[field_name].append(status)
        if polled.get("mode") == "provisioned":
            self.polls["throughput"].append(status)
        what = polled.get("kind", field_name)
        self._line(at, f"    poll {len(self.polls[field_name])}: {what} {status}")

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
                    polled = output.get(field_name) or {} if field_name else {}
                    # (a job that failed or was stopped failed the wait: seen at its TaskFailed)
                    if field_name and "status" in polled:
                        self._polled(at, field_name, str(polled["status"]), polled)
            elif kind in ("TaskFailed", "LambdaFunctionFailed"):
                details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails")
                error = (details or {}).get("error", "")
                if self._current == WAIT_FOR_JOB_STATE and error in _JOB_END_STATUS:
                    self._polled(at, "job", _JOB_END_STATUS[error], {})
                self.task_failures.append((self._current, error))
                self._line(at, f"    {self._current} failed: {error} (the state's Retry/Catch decides)")
        self.seen = len(events)


class UserActions:
    """What the scenario's user does while the run goes on, each at most once.

    * ``abort_at_poll``: StopExecution at the first poll of that kind answering that status, as a
      user would from the console or the CLI.
    * ``reupload_during_settle``: while the run waits in "Let uploads settle", upload a second
      version of ``datasets/<run>/train.jsonl``: the first version's records in reverse order (other
      bytes, as valid as the first). The upload starts a second run through the deployed rule.
    """

    def __init__(self, cloud: LocalCloud, bucket: str, out: TextIO, *, answer_approvals: bool = True) -> None:
        self.answer_approvals = answer_approvals
        self.cloud = cloud
        self.bucket = bucket
        self.out = out
        self.done: list[str] = []

    def __call__(self, follower: Follower, execution_arn: str, key: str) -> None:
        scenario = self.cloud.scenario
        if scenario.abort_at_poll and not any(a.startswith("StopExecution") for a in self.done):
            kind, status = scenario.abort_at_poll
            if kind == "job" and follower.states[-1:] == [WAIT_FOR_JOB_STATE] and not follower.polls["job"]:
                # The job is not polled: stop while the run waits for it to end.
                self.cloud.client("stepfunctions").stop_execution(
                    executionArn=execution_arn,
                    cause=f"stopped by the user (scenario {scenario.name}) while the job was {status}",
                )
                self._did(f"StopExecution while waiting for the job to end (job {status})")
            elif status in follower.polls.get(kind, []):
                self.cloud.client("stepfunctions").stop_execution(
                    executionArn=execution_arn,
                    cause=f"stopped by the user (scenario {scenario.name}) while the {kind} was {status}",
                )
                self._did(f"StopExecution at {kind} poll {follower.polls[kind].index(status) + 1} ({status})")
        if (
            scenario.reupload_during_settle
            and key
            and SETTLE_STATE in follower.states
            and not any(a.startswith("uploaded") for a in self.done)
        ):
            s3 = self.cloud.client("s3")
            first = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
            lines = [line for line in first.splitlines() if line.strip()]
            second = ("\n".join(reversed(lines)) + "\n").encode("utf-8")
            version = s3.put_object(Bucket=self.bucket, Key=key, Body=second).get("VersionId")
            self._did(f"uploaded a second version of {key} (records reversed; version {version})")

        answered = any(a.startswith("approval") for a in self.done)
        if key and self.answer_approvals and APPROVAL_STATE in follower.states and not answered:
            self._answer_approval(key)

    def _answer_approval(self, key: str) -> None:
        """Answer the run's approval request as the scenario's user, once it is written."""
        from bedrock_finetune import approvals  # noqa: PLC0415 - the emulation's user only

        line = key.split("/")[1]
        s3 = self.cloud.client("s3")
        request = approvals.read_request(s3, self.bucket, line)
        if request is None or request.get("status") != approvals.WAITING:
            return
        estimate = request.get("estimate") or {}
        per_hour = (estimate.get("perHour") or estimate.get("per1kInputAndOutputTokens") or {}).get("text")
        print(f"    approval request: {request['what']}", file=self.out, flush=True)
        if per_hour:
            print(f"    estimated cost: {per_hour}", file=self.out, flush=True)
        choice = self.cloud.scenario.approval
        if choice == "ignore":
            self._did("approval request left unanswered (it expires)")
            return
        sfn = self.cloud.client("stepfunctions")
        try:
            approvals.answer(
                sfn,
                s3,
                self.bucket,
                line,
                approve=choice == "approve",
                by=f"finetune local (scenario {self.cloud.scenario.name})",
                reason="rejected by the scenario's user",
            )
        except approvals.ApprovalError as exc:
            self._did(f"approval could not be answered: {exc}")
            return
        self._did(f"approval {'approved' if choice == 'approve' else 'rejected'} ({request['what']})")

    def _did(self, what: str) -> None:
        self.done.append(what)
        print(f"    user: {what}", file=self.out, flush=True)


def follow(
    cloud: LocalCloud,
    execution_arn: str,
    out: TextIO,
    clock: Clock,
    act: Callable[[Follower], None] | None = None,
) -> tuple[dict[str, Any], Follower, list[dict[str, Any]]]:
    """Print progress until the execution ends; returns (describe_execution, follower, events).

    ``act`` is called after each look at the history. When the clock has a :class:`WaitGate`, the
    execution waits at each Wait state until that look has been taken, so ``act`` sees every state
    before the Wait and acts before the execution goes on.
    """
    sfn = cloud.client("stepfunctions")
    follower = Follower(out, clock)
    gate = clock.gate if isinstance(clock.gate, WaitGate) else None
    deadline = time.time() + MAX_RUN_SECONDS
    try:
        while True:
            arrived = gate.arrivals() if gate else 0
            description = sfn.describe_execution(executionArn=execution_arn)
            events = history(sfn, execution_arn)
            follower.feed(events)
            if act is not None:
                act(follower)
            if gate:
                gate.release(arrived)
            if description["status"] != "RUNNING":
                return description, follower, events
            if follower.states and follower.states[-1] == APPROVAL_STATE:
                deadline = time.time() + MAX_RUN_SECONDS  # waiting for a person is not being stuck
            if time.time() > deadline:
                sfn.stop_execution(executionArn=execution_arn, error="LocalRunTimeout", cause="stuck")
                raise TimeoutError(
                    f"the execution did not finish in {MAX_RUN_SECONDS:.0f} s: {execution_arn}"
                )
            time.sleep(0.01)
    finally:
        if gate:
            gate.open()


def job_wait_summary(cloud: LocalCloud, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """When the run's job ended and when its run woke, in emulated seconds, and what woke it: the
    job's state-change event (rule OnJobStateChange), the fallback check (rule FallbackCheck), or the
    wait task itself (the job had ended before it looked)."""
    woke_at = None
    job_arn = None
    for event in events:
        details = event.get("stateExitedEventDetails") or {}
        if event["type"] == "TaskStateExited" and details.get("name") == WAIT_FOR_JOB_STATE:
            woke_at = cloud.clock.aws_time_at(event["timestamp"].timestamp())
            job_arn = (json.loads(details.get("output") or "{}").get("job") or {}).get("jobArn")
    if woke_at is None:
        return None
    ended = cloud.jobs.ended.get(str(job_arn))
    deliveries = list(cloud.router.deliveries)
    by_event = any("OnJobStateChange" in d.rule and str(job_arn) in json.dumps(d.input) for d in deliveries)
    by_check = any("FallbackCheck" in d.rule for d in deliveries)
    woken_by = "job state-change event" if by_event else "fallback check" if by_check else WAIT_FOR_JOB_STATE
    return {
        "job_ended_aws_seconds": ended,
        "run_woke_aws_seconds": woke_at,
        "noticed_after_seconds": None if ended is None else max(0.0, woke_at - ended),
        "woken_by": woken_by,
    }


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
        if scenario.second_version and result.succeeded:
            result.followups.append(second_version(cloud, deployment, run, out))
            _refresh(result, cloud, deployment)
        if scenario.fire_schedules:
            result.actions.extend(fire_schedules(cloud, deployment, out))
            _refresh(result, cloud, deployment)
        if destroy:
            result.deletion = cloud.destroy(deployment)
            result.left_billing = left_billing(deployment.account, deployment.region)
            result.created = created(deployment.account, deployment.region)
            result.throughputs_left = [pt["arn"] for pt in result.left_billing["throughputs"]]
            print(f"  deleted stack {deployment.stack_name}: {result.deletion.stack_status}", file=out)
        return result


def _refresh(result: LocalRun, cloud: LocalCloud, deployment: Deployment) -> None:
    """Read again what the user's later actions changed: notifications, Bedrock, reports."""
    result.notifications = deployment.notifications()
    result.left_billing = left_billing(deployment.account, deployment.region)
    result.created = created(deployment.account, deployment.region)
    result.reports = report_summaries(cloud.client("s3"), deployment.bucket)


def second_version(cloud: LocalCloud, deployment: Deployment, run: str, out: TextIO) -> dict[str, Any]:
    """Upload a second version of the line's train.jsonl (records reversed) and follow its run."""
    s3 = cloud.client("s3")
    key = f"{DATASETS_PREFIX}{run}/{TRAIN_FILE}"
    first = s3.get_object(Bucket=deployment.bucket, Key=key)["Body"].read().decode("utf-8")
    lines = [line for line in first.splitlines() if line.strip()]
    known = {d.execution_arn for d in cloud.router.deliveries}
    version = s3.put_object(
        Bucket=deployment.bucket, Key=key, Body=("\n".join(reversed(lines)) + "\n").encode()
    ).get("VersionId")
    print(
        f"    user: uploaded version 2 of {key} (records reversed; version {version})", file=out, flush=True
    )
    deadline = time.time() + SETTLE_SECONDS
    while True:
        new = [d for d in cloud.router.deliveries if d.execution_arn and d.execution_arn not in known]
        if new:
            break
        if time.time() > deadline:
            raise TimeoutError("the second upload started no execution")
        time.sleep(0.01)
    second = follow_delivery(cloud, deployment, new[0], out)
    endpoint = (second.final_state.get("endpoint") or {}).get("endpointArn")
    return {
        "arn": second.execution_arn,
        "status": second.status,
        "error": second.error,
        "endpointArn": endpoint,
    }


def fire_schedules(cloud: LocalCloud, deployment: Deployment, out: TextIO) -> list[str]:
    """Let the line's one-time schedules fire, earliest first, as EventBridge Scheduler would when
    their time comes (time compressed: the target runs now, with the time it was scheduled for)."""
    scheduler = cloud.client("scheduler")
    fired: list[str] = []
    schedules = []
    for group in scheduler.list_schedule_groups().get("ScheduleGroups", []):
        for item in scheduler.list_schedules(GroupName=group["Name"]).get("Schedules", []):
            schedules.append(scheduler.get_schedule(GroupName=group["Name"], Name=item["Name"]))
    schedules.sort(key=lambda s: s["ScheduleExpression"])
    for schedule in schedules:
        at = schedule["ScheduleExpression"][len("at(") : -1] + "Z"
        target = schedule["Target"]
        payload = target["Input"].replace("<aws.scheduler.scheduled-time>", at)
        response = cloud.client("lambda").invoke(FunctionName=target["Arn"], Payload=payload.encode())
        result = json.loads(response["Payload"].read() or b"{}")
        done = (
            result.get("done")
            if not response.get("FunctionError")
            else f"FAILED: {result.get('errorMessage')}"
        )
        what = f"schedule {schedule['Name']} fired (at {at}): {done}"
        print(f"    {what}", file=out, flush=True)
        fired.append(what)
        if schedule.get("ActionAfterCompletion") == "DELETE":
            scheduler.delete_schedule(GroupName=schedule["GroupName"], Name=schedule["Name"])
    return fired


def started_execution(cloud: LocalCloud) -> Delivery:
    """The one execution the upload of train.jsonl started (an error if it started none or several)."""
    deliveries = [d for d in cloud.router.deliveries if d.execution_arn]
    if len(deliveries) != 1:
        raise RuntimeError(
            f"uploading {TRAIN_FILE} started {len(deliveries)} executions, expected 1: "
            f"{'; '.join(cloud.router.errors) or 'no rule matched'}"
        )
    return deliveries[0]


def follow_delivery(
    cloud: LocalCloud,
    deployment: Deployment,
    delivery: Delivery,
    out: TextIO,
    *,
    settle_all: bool = True,
    answer_approvals: bool = True,
) -> LocalRun:
    """Follow the execution ``delivery`` started to its end, acting as the scenario's user (who
    answers approval requests unless ``answer_approvals`` is false: ``local-server`` leaves them to
    ``finetune approve``); then wait until what its end set off has settled (with ``settle_all``,
    until every execution of the emulation has: a second upload's run too); returns what happened."""
    started = time.time()
    execution_arn = str(delivery.execution_arn)
    key = str((delivery.input or {}).get("key", "")) if isinstance(delivery.input, dict) else ""
    run = key.split("/")[1] if key.count("/") == 2 else key
    print(f"  {key} -> rule {delivery.rule} -> execution {execution_arn.rsplit(':', 1)[1]}", file=out)
    actions = UserActions(cloud, deployment.bucket, out, answer_approvals=answer_approvals)
    before = {e["executionArn"] for e in _executions(cloud, deployment)}
    description, follower, events = follow(
        cloud, execution_arn, out, cloud.clock, lambda f: actions(f, execution_arn, key)
    )
    unsettled = settle(cloud, deployment, out, None if settle_all else execution_arn)
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
        unsettled=unsettled,
        left_billing=left_billing(deployment.account, deployment.region),
        created=created(deployment.account, deployment.region),
        reports=report_summaries(cloud.client("s3"), deployment.bucket),
        other_executions=[
            {"arn": e["executionArn"], "stateMachine": e["stateMachineArn"], "status": e["status"]}
            for e in _executions(cloud, deployment)
            if e["executionArn"] not in before and e["executionArn"] != execution_arn
        ],
        delivery_errors=list(cloud.router.errors),
        actions=list(actions.done),
        job_wait=job_wait_summary(cloud, events),
    )


def settle(cloud: LocalCloud, deployment: Deployment, out: TextIO, root: str | None = None) -> list[str]:
    """Wait until every execution (or ``root`` and what its end started) has ended and its end has
    been delivered to the rules (the OnExecutionEnded target, and what it starts, ran); returns
    what had not, after SETTLE_SECONDS."""
    unsettled = cloud.wait_until_settled(deployment, SETTLE_SECONDS, root)
    if unsettled:
        print(
            f"  the emulation did not settle within {SETTLE_SECONDS:.0f} s after the execution ended: "
            f"{len(unsettled)} execution(s) still running or with their end not yet delivered: "
            f"{', '.join(unsettled)}. What is left billing below is what the emulated Bedrock held then.",
            file=out,
        )
    return unsettled


def _executions(cloud: LocalCloud, deployment: Deployment) -> list[dict[str, Any]]:
    """Every execution of the stack's state machines, oldest first."""
    sfn = cloud.client("stepfunctions")
    found: list[dict[str, Any]] = []
    for arn in deployment.state_machine_arns or (deployment.state_machine_arn,):
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            found.extend(page["executions"])
    return sorted(found, key=lambda e: e["startDate"])


def publish_execution_ended(cloud: LocalCloud, deployment: Deployment, description: dict[str, Any]) -> None:
    """Wait until the status-change event of the execution ``description`` describes has gone through
    the deployed rules. The emulation sends it by itself when an execution ends, as AWS does (the
    OnExecutionEnded rule acts on the end statuses it matches); this only waits for it."""
    arn = str(description["executionArn"])
    deadline = time.time() + SETTLE_SECONDS
    while arn not in cloud.router.ended:
        if time.time() > deadline:
            raise TimeoutError(f"the end of {arn} was not delivered in {SETTLE_SECONDS:.0f} s")
        time.sleep(0.01)


def _rows(result: LocalRun) -> Iterator[tuple[str, Any]]:
    state = result.final_state
    validation = state.get("validation") or {}
    job = state.get("job") or {}
    training = state.get("training") or {}
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
        by_code = ", ".join(f"{code} {count:,}" for code, count in counts.items())
        yield "Validation", f"INVALID: {sum(counts.values()):,} error(s): {by_code}"
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
    yield from _serving_rows(result)
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


def _serving_rows(result: LocalRun) -> Iterator[tuple[str, Any]]:
    state = result.final_state
    endpoint = state.get("endpoint") or {}
    line = state.get("line") or {}
    if endpoint.get("endpointArn"):
        yield "Endpoint", f"{endpoint.get('endpointArn')}  ({endpoint.get('kind')}, {endpoint.get('status')})"
    if line.get("version"):
        yield "Line version", f"{line.get('version')} ({line.get('status')})"
    evaluation = state.get("evaluation") or {}
    if evaluation.get("summary"):
        yield "Evaluation", evaluation["summary"]
    estimate = (state.get("serving") or {}).get("estimate") or {}
    for key in ("perHour", "per1kInputAndOutputTokens"):
        if estimate.get(key):
            yield "Estimated cost", estimate[key].get("text")
    for followup in getattr(result, "followups", []):
        yield "Next version", f"{followup['status']}  endpoint {followup.get('endpointArn')}"
    for action in getattr(result, "actions", []):
        yield "User", action


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
SERVICES = (
    "s3",
    "bedrock",
    "sns",
    "stepfunctions",
    "cloudformation",
    "ssm",
    "lambda",
    "events",
    "sqs",
    "scheduler",
)


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
    summary: bool = True,
) -> LocalRun:
    """``finetune local``: synthesize, deploy, upload, follow, (destroy,) summarize (to stdout by
    default; with ``summary=False`` the caller reports, e.g. ``--json``).

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
        synth = synthesize(Path(outdir), **{**dict(scenario.context), **(context or {})})
        warm.join()
        took = time.time() - started
        if synth.reused:
            print(
                f"  reused the template of {synth.stack_name} synthesized earlier: none of its inputs "
                f"changed (content hash {synth.reused[:12]}; {took:.1f} s)",
                file=out,
            )
        else:
            print(f"  synthesized {synth.stack_name} with cdk-nag ({took:.1f} s)", file=out)
        result = execute(synth, run_dir, scenario, out, time_scale=time_scale, destroy=destroy)
    result.seconds = time.time() - started
    if summary:
        print_summary(result, out)
    return result
