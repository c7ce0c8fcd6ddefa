"""The training queue: at most ``max_concurrent_jobs`` customization jobs at once, slots in upload order.

A distributed semaphore in DynamoDB, changed only by conditional writes, as in the AWS Step Functions
concurrency-control sample ("Controlling concurrency in distributed systems using AWS Step Functions",
https://aws.amazon.com/blogs/compute/controlling-concurrency-in-distributed-systems-using-aws-step-functions/,
code in aws-samples/aws-stepfunctions-examples, sam/app-control-concurrency-with-dynamodb): one lock
item holds the count and the holders. Here it also holds a ticket per waiting run, so that slots go to
the oldest uploads first, and a lease per ticket, so that a crash leaks nothing.

The item (partition key ``pk`` = sort key ``sk`` = "queue")::

    version   N   bumped by every change; a change is written only if the version is still the one
                  it was computed from (optimistic locking,
                  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DynamoDBMapper.OptimisticLocking.html)
    held      N   slots in use (the holding tickets), for people reading the table
    limit     N   the limit the last Take applied
    tickets   S   JSON: execution ARN -> {order (upload time in ms and execution name), run, jobName,
                  state (waiting | holding), joinedAt, waitingSince, grantedAt, leaseExpiresAt}

One item makes every change atomic without transactions (the count and the tickets move together) and
every look at the queue one read. It holds about a thousand tickets (DynamoDB's 400 KB item limit);
a change that keeps losing races to others is a transient error the state machine retries.

- **Join** (right after the upload is recognised as a run): the run's ticket, ordered by its
  execution's start time, i.e. by upload.
- **Take** (after validation, then after each wait): the run gets a slot when it is among the oldest
  ``free`` tickets without one, ``free`` being the limit less the holding tickets in the same version.
  Two runs racing for the last slot both compute from the same version; only the first write lands,
  and the other, computing again from the new version, finds no slot.
- **Release** when the job has ended (whatever its status: JobEnded, as it wakes the run, see
  ``job_wait``; any other failure: the clean-up; abort and timeout: the clean-up of ended
  executions), through :class:`RunSlot`: the ticket goes, so the slot is given back once however
  many try.
- **Leases**: a Take renews its own ticket. A ticket whose lease expired is checked by the next run
  that looks: a waiting ticket is dropped (a live run re-joins at its original place on its next
  Take); a holding one is given back only when Bedrock says its job has ended or never started, and
  renewed while the job still runs.

Plain functions over a boto3 ``dynamodb`` client (and ``bedrock``, ``sns`` where needed), passed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.bedrock_jobs import classify, find_job
from bedrock_finetune.errors import AwsTransientError, BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.notifications import Links, Notice, error_message, publish
from bedrock_finetune.quota_wait import MAX_WAIT_CAPS, wait_seconds
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import TrainingQueueSettings

WAITING, HOLDING = "waiting", "holding"
#: Job statuses in which a job still counts against Bedrock's concurrent-jobs quota.
JOB_RUNNING = frozenset({"InProgress", "Stopping"})
_KEY = {"pk": {"S": "queue"}, "sk": {"S": "queue"}}
#: How many times a change is computed again after losing a race before it gives up (transiently).
CHANGE_ATTEMPTS = 8


def upload_order(started_at: str | float, execution_name: str) -> str:
    """The ticket's place in line: the execution's start time in milliseconds (``$$.Execution.StartTime``,
    ISO 8601; or epoch milliseconds, as the execution's status-change event has it), then its name."""
    if isinstance(started_at, int | float) or str(started_at).isdigit():
        millis = int(float(started_at))
    else:
        text = str(started_at).strip().replace("Z", "+00:00")
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        millis = int(moment.timestamp() * 1000)
    return f"{millis:015d}#{execution_name}"


@dataclass(frozen=True)
class Ticket:
    """One run's place in the queue."""

    execution_arn: str
    order: str
    run: str
    job_name: str
    state: str
    joined_at: float
    lease_expires_at: float
    waiting_since: float | None = None
    granted_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "run": self.run,
            "jobName": self.job_name,
            "state": self.state,
            "joinedAt": self.joined_at,
            "leaseExpiresAt": self.lease_expires_at,
            "waitingSince": self.waiting_since,
            "grantedAt": self.granted_at,
        }

    @classmethod
    def from_json(cls, execution_arn: str, data: Mapping[str, Any]) -> Ticket:
        return cls(
            execution_arn=execution_arn,
            order=str(data["order"]),
            run=str(data["run"]),
            job_name=str(data["jobName"]),
            state=str(data["state"]),
            joined_at=float(data["joinedAt"]),
            lease_expires_at=float(data["leaseExpiresAt"]),
            waiting_since=data.get("waitingSince"),
            granted_at=data.get("grantedAt"),
        )


@dataclass(frozen=True)
class QueueState:
    """One version of the queue: every ticket, oldest upload first."""

    version: int = 0
    tickets: tuple[Ticket, ...] = ()
    limit: int | None = None

    @property
    def held(self) -> int:
        return sum(1 for t in self.tickets if t.state == HOLDING)

    def ticket(self, execution_arn: str) -> Ticket | None:
        return next((t for t in self.tickets if t.execution_arn == execution_arn), None)

    def with_ticket(self, ticket: Ticket) -> tuple[Ticket, ...]:
        """The tickets with ``ticket`` added, or in place of the execution's old one."""
        others = [t for t in self.tickets if t.execution_arn != ticket.execution_arn]
        return tuple(sorted([*others, ticket], key=lambda t: t.order))

    def without(self, execution_arn: str) -> tuple[Ticket, ...]:
        return tuple(t for t in self.tickets if t.execution_arn != execution_arn)


@dataclass(frozen=True)
class Change:
    """What a step decided: the tickets to write (None: nothing changes), and what to answer."""

    tickets: tuple[Ticket, ...] | None
    outcome: Any = None
    limit: int | None = None


@dataclass(frozen=True)
class QueueTable:
    """The queue's table: one item, read strongly consistent, written only if its version is unchanged."""

    dynamodb: Any
    name: str
    #: Called between reading a version and writing the change made from it (tests make races there).
    before_write: Callable[[], None] | None = field(default=None, compare=False)

    def read(self) -> QueueState:
        item = self.dynamodb.get_item(TableName=self.name, Key=_KEY, ConsistentRead=True).get("Item")
        if not item:
            return QueueState()
        tickets = json.loads(item["tickets"]["S"])
        return QueueState(
            version=int(item["version"]["N"]),
            tickets=tuple(
                sorted((Ticket.from_json(arn, t) for arn, t in tickets.items()), key=lambda t: t.order)
            ),
            limit=int(item["limit"]["N"]) if "limit" in item else None,
        )

    def write(self, seen: QueueState, tickets: Sequence[Ticket], *, limit: int | None = None) -> bool:
        """Write ``tickets`` as the next version after ``seen``; False when someone wrote first."""
        limit = limit if limit is not None else seen.limit
        item: dict[str, Any] = {
            **_KEY,
            "version": {"N": str(seen.version + 1)},
            "held": {"N": str(sum(1 for t in tickets if t.state == HOLDING))},
            "tickets": {"S": json.dumps({t.execution_arn: t.to_json() for t in tickets}, sort_keys=True)},
        }
        if limit is not None:
            item["limit"] = {"N": str(limit)}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if seen.version == 0
            else {
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":seen": {"N": str(seen.version)}},
            }
        )
        try:
            self.dynamodb.put_item(TableName=self.name, Item=item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def change(self, step: Callable[[QueueState], Change], *, read: QueueState | None = None) -> Any:
        """Apply ``step`` to the current version (``read``, when just read) and write its tickets, again
        from the new version whenever another writer got there first; returns the step's outcome."""
        for attempt in range(CHANGE_ATTEMPTS):
            seen = read if read is not None and attempt == 0 else self.read()
            decided = step(seen)
            if decided.tickets is None:
                return decided.outcome
            if self.before_write is not None:
                self.before_write()
            if self.write(seen, decided.tickets, limit=decided.limit):
                return decided.outcome
        raise AwsTransientError(
            f"The training queue's table changed under {CHANGE_ATTEMPTS} attempts in a row to update it; "
            "retried with back-off."
        )


# ---- what the CLI and the notices show ----


@dataclass(frozen=True)
class QueueEntry:
    """One run in the queue, as ``finetune runs`` / ``finetune status`` show it."""

    run: str
    execution_arn: str
    #: ``training`` (holds a slot), ``waiting`` (asked for a slot and got none yet) or ``preparing``
    #: (in line since its upload, still settling or being validated).
    state: str
    #: 1-based place among the runs without a slot; ``None`` while training.
    position: int | None
    joined_at: float
    waiting_since: float | None
    granted_at: float | None
    lease_expires_at: float
    job_name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "executionArn": self.execution_arn,
            "state": self.state,
            "position": self.position,
            "joinedAt": self.joined_at,
            "waitingSince": self.waiting_since,
            "grantedAt": self.granted_at,
            "leaseExpiresAt": self.lease_expires_at,
            "jobName": self.job_name,
        }

    def label(self) -> str:
        what = {"training": "training", "waiting": "waiting", "preparing": "checking its data"}[self.state]
        return f"{self.run} ({what})"


@dataclass(frozen=True)
class QueueView:
    """The whole queue at one moment: the slots, and every run in line, oldest upload first."""

    in_use: int
    limit: int | None
    entries: tuple[QueueEntry, ...]

    @property
    def training(self) -> list[QueueEntry]:
        return [e for e in self.entries if e.state == "training"]

    @property
    def in_line(self) -> list[QueueEntry]:
        """The runs without a slot, in the order they will get one."""
        return [e for e in self.entries if e.position is not None]

    def entry(self, execution_arn: str) -> QueueEntry | None:
        return next((e for e in self.entries if e.execution_arn == execution_arn), None)

    def ahead_of(self, execution_arn: str) -> list[QueueEntry]:
        """The runs without a slot that will get one before this execution's run."""
        line = self.in_line
        index = next((i for i, e in enumerate(line) if e.execution_arn == execution_arn), len(line))
        return line[:index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slots": self.limit,
            "inUse": self.in_use,
            "length": len(self.in_line),
            "entries": [e.to_dict() for e in self.entries],
        }


def view_of(tickets: Sequence[Ticket], in_use: int, limit: int | None) -> QueueView:
    entries: list[QueueEntry] = []
    position = 0
    for t in tickets:
        if t.state == HOLDING:
            state, place = "training", None
        else:
            position += 1
            state, place = ("waiting" if t.waiting_since is not None else "preparing"), position
        entries.append(
            QueueEntry(
                run=t.run,
                execution_arn=t.execution_arn,
                state=state,
                position=place,
                joined_at=t.joined_at,
                waiting_since=t.waiting_since,
                granted_at=t.granted_at,
                lease_expires_at=t.lease_expires_at,
                job_name=t.job_name,
            )
        )
    return QueueView(in_use=in_use, limit=limit, entries=tuple(entries))


def list_queue(dynamodb: Any, table_name: str) -> QueueView:
    """The training queue now (for ``finetune runs`` and ``finetune status``): who trains, who waits
    and in which order. ``table_name`` is the stack output ``TrainingQueueTableName``."""
    state = QueueTable(dynamodb, table_name).read()
    return view_of(state.tickets, state.held, state.limit)


# ---- the use cases of the TrainingQueue task ----


def join_queue(
    table: QueueTable,
    settings: TrainingQueueSettings,
    *,
    run: RunRef,
    execution_arn: str,
    execution_name: str,
    started_at: str,
    now: float | None = None,
) -> dict[str, Any]:
    """ "Join the training queue": the run's ticket, in upload order. Returns the ``$.queue`` state."""
    now = time.time() if now is None else now
    ticket = Ticket(
        execution_arn=execution_arn,
        order=upload_order(started_at, execution_name),
        run=run.run,
        job_name=run.names.job_name,
        state=WAITING,
        joined_at=now,
        lease_expires_at=now + settings.lease_seconds,
    )

    def step(state: QueueState) -> Change:
        existing = state.ticket(execution_arn)
        return Change(None, existing) if existing else Change(state.with_ticket(ticket), ticket)

    stored: Ticket = table.change(step)
    return {
        "order": stored.order,
        "joinedAt": stored.joined_at,
        "attempt": 0,
        "waitSeconds": 0,
        "waitedSeconds": 0,
        "bedrockRefusals": 0,
    }


@dataclass(frozen=True)
class _Round:
    """What one Take decided, from the version it wrote (or found unchanged)."""

    granted: bool
    view: QueueView
    place: int
    #: It holds a slot, but Bedrock refused its job for a quota: it waits with its slot.
    refused: bool = False


def take_slot(
    table: QueueTable,
    bedrock: Any,
    sns: Any,
    settings: TrainingQueueSettings,
    *,
    run: RunRef,
    execution_arn: str,
    previous: Mapping[str, Any],
    now: float | None = None,
) -> dict[str, Any]:
    """ "Take a training slot": ``status`` ``granted`` (go on to start the job) or ``waiting`` (wait
    ``waitSeconds``, then ask again).

    ``previous`` is the ``$.queue`` state (from Join, or this function's last result). With a
    ``refusal`` in it (Bedrock refused to start the job for a quota), the run keeps its slot and
    waits with back-off, unless no job runs in the account at all (then the quota is not the one of
    concurrent jobs, and waiting cannot help: :class:`BedrockQuotaExceeded`). Raises
    :class:`QuotaWaitExpired` when the waits reach ``max_queue_seconds`` without a slot.
    """
    now = time.time() if now is None else now
    waited = int(previous.get("waitedSeconds") or 0) + int(previous.get("waitSeconds") or 0)
    # What carries over from round to round; the rest describes one round only.
    carried: dict[str, Any] = {k: previous[k] for k in _KEPT if k in previous}
    carried.update(waitedSeconds=waited, waitSeconds=0)
    refusal = previous.get("refusal")
    said = error_message(str(refusal.get("Cause", ""))) if refusal else ""
    running = running_jobs(bedrock) if refusal else []
    if refusal and not running:
        raise BedrockQuotaExceeded(
            f"{said} No customization job is running in this account, so this quota is not the one on "
            "concurrent jobs and waiting would not help; check Service Quotas for Amazon Bedrock."
        )
    # Bedrock's word on every other holder whose lease has lapsed, asked before the change is made.
    current = table.read()
    lapsed = {
        t.execution_arn: _job_status(bedrock, t.job_name)
        for t in current.tickets
        if t.state == HOLDING and t.execution_arn != execution_arn and t.lease_expires_at <= now
    }
    order = str(previous.get("order") or upload_order(now * 1000, execution_arn.rsplit(":", 1)[-1]))
    fresh = Ticket(execution_arn, order, run.run, run.names.job_name, WAITING, now, now, waiting_since=now)

    def step(state: QueueState) -> Change:
        tickets = _reclaimed(state.tickets, lapsed, now=now, lease=settings.lease_seconds, me=execution_arn)
        mine = state.ticket(execution_arn) or fresh
        renewed = _renewed(mine, now, settings.lease_seconds)
        others = [t for t in tickets if t.execution_arn != execution_arn]
        held = sum(1 for t in others if t.state == HOLDING)
        line = sorted([*[t for t in others if t.state == WAITING], renewed], key=lambda t: t.order)
        place = line.index(renewed)
        refused = bool(refusal) and mine.state == HOLDING
        granted = mine.state == HOLDING and not refused
        if mine.state == WAITING and place < settings.max_concurrent_jobs - held:
            renewed = replace(renewed, state=HOLDING, granted_at=now)
            granted = True
        after = tuple(sorted([*others, renewed], key=lambda t: t.order))
        view = view_of(after, sum(1 for t in after if t.state == HOLDING), None)
        limit = settings.max_concurrent_jobs if granted else None
        return Change(None if after == state.tickets else after, _Round(granted, view, place, refused), limit)

    decided: _Round = table.change(step, read=current)
    counts = {"inLine": len(decided.view.in_line), "inUse": decided.view.in_use}
    if decided.refused:
        return _bedrock_refused(
            sns, settings, run=run, carried=carried, said=said, running=running, waited=waited, counts=counts
        )
    if decided.granted:
        granted_at = next(e.granted_at for e in decided.view.entries if e.execution_arn == execution_arn)
        return {**carried, "status": "granted", "position": 0, "grantedAt": granted_at, **counts}

    view = decided.view
    entry = view.entry(execution_arn)
    position = entry.position if entry and entry.position else decided.place + 1
    if waited >= settings.max_queue_seconds:
        raise QuotaWaitExpired(_gave_up(view, execution_arn, waited, settings))
    attempt = int(previous.get("attempt") or 0)
    if attempt == 0:
        publish(
            sns, settings.topic_arn, waiting_notice(view, run, execution_arn, settings), "waiting", run.run
        )
    return {
        **carried,
        "status": "waiting",
        "reason": "queue",
        "position": position,
        "ahead": [e.run for e in view.ahead_of(execution_arn)],
        "attempt": attempt + 1,
        "waitSeconds": min(
            queue_wait_seconds(attempt, position, settings.max_concurrent_jobs, settings.wait_cap_seconds),
            _left(settings, waited),
        ),
        **counts,
    }


#: The ``$.queue`` fields that carry over from one Take to the next.
_KEPT = ("order", "joinedAt", "attempt", "bedrockRefusals", "grantedAt")


def _renewed(ticket: Ticket, now: float, lease_seconds: int) -> Ticket:
    """The ticket with its lease renewed when less than half of it is left (a write is not free), and
    with the time it started waiting."""
    lease = ticket.lease_expires_at
    if lease - now < lease_seconds / 2:
        lease = now + lease_seconds
    since = ticket.waiting_since if ticket.waiting_since is not None or ticket.state == HOLDING else now
    return replace(ticket, lease_expires_at=lease, waiting_since=since)


def _reclaimed(
    tickets: Sequence[Ticket], lapsed: Mapping[str, str | None], *, now: float, lease: int, me: str
) -> list[Ticket]:
    """The tickets once the lapsed ones of others are dealt with: a waiting one goes (its run, if alive,
    comes back at its own place); a holding one goes when Bedrock said its job has ended or never
    started, and is renewed while the job runs (it really holds a slot of the account)."""
    kept: list[Ticket] = []
    for ticket in tickets:
        if ticket.execution_arn == me or ticket.lease_expires_at > now:
            kept.append(ticket)
        elif ticket.state == HOLDING and ticket.execution_arn not in lapsed:
            kept.append(ticket)  # it lapsed after Bedrock was asked: the next Take looks at it
        elif ticket.state == HOLDING and lapsed[ticket.execution_arn] in JOB_RUNNING:
            kept.append(replace(ticket, lease_expires_at=now + lease))
    return kept


def _job_status(bedrock: Any, job_name: str) -> str | None:
    job = find_job(bedrock, job_name)
    return str(job.get("status")) if job else None


def queue_wait_seconds(attempt: int, position: int, limit: int, cap: int) -> int:
    """How long a run without a slot waits before it asks again: the back-off of quota_wait (2, 4,
    8 minutes..., up to the cap), and at least one cap per full round of ``limit`` runs ahead of it
    (a run at place 7 with 2 slots waits for at least 3 rounds of jobs to end), at most
    :data:`~bedrock_finetune.quota_wait.MAX_WAIT_CAPS` caps."""
    rounds_ahead = (position - 1) // max(1, limit)
    return max(wait_seconds(attempt, cap), min(rounds_ahead, MAX_WAIT_CAPS) * cap)


def _left(settings: TrainingQueueSettings, waited: int) -> int:
    return max(1, settings.max_queue_seconds - waited)


def _bedrock_refused(
    sns: Any,
    settings: TrainingQueueSettings,
    *,
    run: RunRef,
    carried: dict[str, Any],
    said: str,
    running: Sequence[str],
    waited: int,
    counts: dict[str, int],
) -> dict[str, Any]:
    """The run holds a slot but Bedrock refused its job: wait with back-off, told once."""
    if waited >= settings.max_queue_seconds:
        raise QuotaWaitExpired(
            f"Waited {_hours(waited)} for a training slot and gave up (max_queue_hours = "
            f"{_hours(settings.max_queue_seconds)}): Bedrock kept refusing its job for a quota ({said}). "
            "Nothing was trained or bought. Upload train.jsonl again to queue again."
        )
    refusals = int(carried.get("bedrockRefusals") or 0)
    if refusals == 0:
        publish(
            sns, settings.topic_arn, bedrock_full_notice(run, said, running, settings), "waiting", run.run
        )
    return {
        **carried,
        "status": "waiting",
        "reason": "bedrock-quota",
        "bedrockRefusals": refusals + 1,
        "runningJobs": len(running),
        "waitSeconds": min(wait_seconds(refusals, settings.wait_cap_seconds), _left(settings, waited)),
        **counts,
    }


def running_jobs(bedrock: Any) -> list[str]:
    """The customization jobs in progress in the account (any tool's), by ARN."""
    arns: list[str] = []
    params: dict[str, Any] = {"statusEquals": "InProgress", "maxResults": 100}
    while True:
        try:
            page = bedrock.list_model_customization_jobs(**params)
        except ClientError as exc:
            raise classify(exc, "ListModelCustomizationJobs") from exc
        arns.extend(str(j["jobArn"]) for j in page.get("modelCustomizationJobSummaries", []))
        if not page.get("nextToken"):
            return arns
        params["nextToken"] = page["nextToken"]


@dataclass(frozen=True)
class RunSlot:
    """A run's place in the queue, as the clean-ups see it (see ``cleanup.Slot``)."""

    table: QueueTable
    execution_arn: str

    def give_back(self, job_status: str | None) -> tuple[str | None, str | None]:
        """Leave the queue, or give the slot back unless the run's own job still runs (Bedrock counts
        a job against the quota until it has ended): ``(what was done, what has to wait)``."""
        arn = self.execution_arn

        def step(state: QueueState) -> Change:
            mine = state.ticket(arn)
            if mine is None:
                return Change(None, (None, None))
            if mine.state == WAITING:
                return Change(state.without(arn), ("left the training queue", None))
            if job_status in JOB_RUNNING:
                return Change(
                    None, (None, f"its training slot is kept until its job ({job_status}) has ended")
                )
            return Change(state.without(arn), ("gave back its training slot", None))

        done: tuple[str | None, str | None] = self.table.change(step)
        return done


def run_slot(dynamodb: Any, table_name: str | None, execution_arn: str) -> RunSlot | None:
    """The execution's place in the queue for a clean-up (None when the stack has no queue table)."""
    return RunSlot(QueueTable(dynamodb, table_name), execution_arn) if table_name else None


# ---- notices ----


def _console(execution_arn: str) -> str:
    region = execution_arn.split(":")[3] if execution_arn.count(":") > 3 else ""
    return Links(region=region, bucket="", log_group="").execution_console(execution_arn)


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{round(seconds / 60)} min"


def _slots(view: QueueView, settings: TrainingQueueSettings) -> str:
    training = ", ".join(e.run for e in view.training) or "none"
    return f"{view.in_use} of {settings.max_concurrent_jobs} in use (training: {training})"


def waiting_notice(
    view: QueueView, run: RunRef, execution_arn: str, settings: TrainingQueueSettings
) -> Notice:
    """The notice of a run that starts waiting: its place, who is ahead, when it gives up."""
    entry = view.entry(execution_arn)
    position = entry.position if entry and entry.position else len(view.in_line)
    ahead = view.ahead_of(execution_arn)
    body = "\n".join(
        [
            f"Run: {run.run}",
            f"Status: waiting for a training slot, position {position} of {len(view.in_line)} in line",
            f"Slots: {_slots(view, settings)}",
            "Ahead of it: " + (", ".join(e.label() for e in ahead) or "nobody (it starts when a slot frees)"),
            "Why: at most max_concurrent_jobs customization jobs run at once (the account's Bedrock quota "
            "unless configured lower); runs get slots in upload order.",
            f"Gives up: after {_hours(settings.max_queue_seconds)} of waiting (max_queue_hours) the run "
            "fails with a notice, and nothing is trained or bought for it.",
            "Follow it: finetune runs, finetune status, or the execution's state "
            "'Waiting for a training slot'.",
            f"Execution: {_console(execution_arn)}",
        ]
    )
    return Notice(
        subject=f"[fine-tuning] {run.run}: waiting for a training slot (position {position})"[:100],
        body=body,
        error="",
        cause="",
    )


def bedrock_full_notice(
    run: RunRef, said: str, running: Sequence[str], settings: TrainingQueueSettings
) -> Notice:
    """The notice of a run whose job Bedrock refused for its concurrent-jobs quota."""
    body = "\n".join(
        [
            f"Run: {run.run}",
            "Status: it has a training slot, but Bedrock refused to start its job for a quota; it waits and "
            "tries again (after 2, 4, 8 minutes, then at a steady interval).",
            f"Bedrock said: {said}",
            f"Jobs in progress in the account (this pipeline's and any other tool's): {len(running)}",
            f"Gives up: after {_hours(settings.max_queue_seconds)} of waiting in all (max_queue_hours); "
            "nothing is trained or bought for it then.",
        ]
    )
    return Notice(
        subject=f"[fine-tuning] {run.run}: Bedrock's job quota is full, waiting"[:100],
        body=body,
        error="",
        cause="",
    )


def _gave_up(view: QueueView, execution_arn: str, waited: int, settings: TrainingQueueSettings) -> str:
    """The cause of a run that waited max_queue_hours without a slot: how long, where it stood."""
    ahead = view.ahead_of(execution_arn)
    entry = view.entry(execution_arn)
    where = f"it was still number {entry.position if entry else '?'} in line" + (
        f", behind {', '.join(e.run for e in ahead)}" if ahead else ""
    )
    return (
        f"Waited {_hours(waited)} for a training slot and gave up (max_queue_hours = "
        f"{_hours(settings.max_queue_seconds)}): {where}; slots {_slots(view, settings)}. Nothing was "
        "trained or bought. Upload train.jsonl again to queue again, or ask the platform team to raise "
        "max_concurrent_jobs (or the account's Bedrock quota) or max_queue_hours."
    )
