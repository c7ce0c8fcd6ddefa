"""The training queue: at most ``max_concurrent_jobs`` customization jobs at once, slots in upload order.

A distributed semaphore on one DynamoDB table with conditional writes, as in the AWS Step Functions
concurrency-control sample ("Controlling concurrency in distributed systems using AWS Step Functions",
https://aws.amazon.com/blogs/compute/controlling-concurrency-in-distributed-systems-using-aws-step-functions/,
code in aws-samples/aws-stepfunctions-examples, sam/app-control-concurrency-with-dynamodb), with a
ticket per run so that slots go to the oldest uploads first, and leases so that a crash leaks nothing.

The table (partition key ``pk``, sort key ``sk``)::

    pk = "slots",  sk = "slots"            held: slots in use; limit: the limit the last grant applied
    pk = "ticket", sk = <execution ARN>    one per run in the queue: order (upload time in ms and the
                                           execution name), run, jobName, state (waiting | holding),
                                           joinedAt, waitingSince, grantedAt, leaseExpiresAt

- **Join** (right after the upload is recognised as a run): the run's ticket, ordered by its
  execution's start time, i.e. by upload.
- **Take** (after validation, then after each wait): the run gets a slot when it is among the oldest
  ``free`` tickets without one. The grant is one transaction: ``held < limit`` on the slots item and
  ``state = waiting`` on the ticket, so two runs racing for the last slot cannot both win.
- **Release** when the job has ended (Completed: its own state; Failed, Stopped or any failure: the
  clean-up; abort and timeout: the clean-up of ended executions): the ticket goes and ``held``
  drops by one, in one transaction conditioned on the ticket still holding, so a slot is given back
  once however many clean-ups try.
- **Leases**: every Take renews its own ticket. A ticket whose lease expired is checked by the next run
  that looks: a waiting ticket is dropped (a live run re-joins at its original place on its next
  Take); a holding one is given back only when Bedrock says its job has ended or never started, and
  renewed while the job still runs.

Plain functions over a boto3 ``dynamodb`` client (and ``bedrock``, ``sns`` where needed), passed in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from bedrock_finetune.bedrock_jobs import classify, find_job
from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.notifications import Links, Notice, error_message, publish
from bedrock_finetune.quota_wait import wait_seconds
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import TrainingQueueSettings

WAITING, HOLDING = "waiting", "holding"
#: Job statuses in which a job still counts against Bedrock's concurrent-jobs quota.
JOB_RUNNING = frozenset({"InProgress", "Stopping"})
_SLOTS_KEY = {"pk": {"S": "slots"}, "sk": {"S": "slots"}}
_TICKETS = "ticket"
#: Conditional-write refusals: someone else changed the item first.
_REFUSED = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


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

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": _TICKETS},
            "sk": {"S": self.execution_arn},
            "order": {"S": self.order},
            "run": {"S": self.run},
            "jobName": {"S": self.job_name},
            "state": {"S": self.state},
            "joinedAt": {"N": _num(self.joined_at)},
            "leaseExpiresAt": {"N": _num(self.lease_expires_at)},
        }
        if self.waiting_since is not None:
            item["waitingSince"] = {"N": _num(self.waiting_since)}
        if self.granted_at is not None:
            item["grantedAt"] = {"N": _num(self.granted_at)}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Ticket:
        def number(name: str) -> float | None:
            return float(item[name]["N"]) if name in item else None

        return cls(
            execution_arn=item["sk"]["S"],
            order=item["order"]["S"],
            run=item["run"]["S"],
            job_name=item["jobName"]["S"],
            state=item["state"]["S"],
            joined_at=float(item["joinedAt"]["N"]),
            lease_expires_at=float(item["leaseExpiresAt"]["N"]),
            waiting_since=number("waitingSince"),
            granted_at=number("grantedAt"),
        )

    def _key(self) -> dict[str, Any]:
        return {"pk": {"S": _TICKETS}, "sk": {"S": self.execution_arn}}


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _refused(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _REFUSED


@dataclass(frozen=True)
class QueueTable:
    """The queue's table. Every read is strongly consistent; every change is a conditional write."""

    dynamodb: Any
    name: str

    def tickets(self) -> list[Ticket]:
        """Every ticket, oldest upload first."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _TICKETS}},
            "ConsistentRead": True,
        }
        while True:
            page = self.dynamodb.query(**params)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((Ticket.from_item(i) for i in items), key=lambda t: t.order)

    def ticket(self, execution_arn: str) -> Ticket | None:
        item = self.dynamodb.get_item(
            TableName=self.name, Key={"pk": {"S": _TICKETS}, "sk": {"S": execution_arn}}, ConsistentRead=True
        ).get("Item")
        return Ticket.from_item(item) if item else None

    def slots(self) -> tuple[int, int | None]:
        """``(slots in use, the limit the last grant applied or None)``."""
        item = self.dynamodb.get_item(TableName=self.name, Key=_SLOTS_KEY, ConsistentRead=True).get("Item")
        if not item:
            return 0, None
        limit = int(item["limit"]["N"]) if "limit" in item else None
        return int(item.get("held", {}).get("N", "0")), limit

    def join(self, ticket: Ticket) -> Ticket:
        """Put the ticket unless the execution has one already; returns the one stored."""
        try:
            self.dynamodb.put_item(
                TableName=self.name, Item=ticket.item(), ConditionExpression="attribute_not_exists(sk)"
            )
        except ClientError as exc:
            if not _refused(exc):
                raise
            return self.ticket(ticket.execution_arn) or ticket
        return ticket

    def renew(self, ticket: Ticket, until: float, *, waiting_since: float | None = None) -> bool:
        """Extend the ticket's lease (and note when it started waiting); False when it is gone or
        changed state meanwhile."""
        names = {"#state": "state", "#lease": "leaseExpiresAt"}
        values: dict[str, Any] = {":until": {"N": _num(until)}, ":state": {"S": ticket.state}}
        update = "SET #lease = :until"
        if waiting_since is not None:
            update += ", waitingSince = if_not_exists(waitingSince, :since)"
            values[":since"] = {"N": _num(waiting_since)}
        return self._conditional(
            self.dynamodb.update_item,
            TableName=self.name,
            Key=ticket._key(),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(sk) AND #state = :state",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def extend_if_unchanged(self, ticket: Ticket, until: float) -> bool:
        """Extend an expired lease that nobody renewed meanwhile (a holder whose job still runs)."""
        return self._conditional(
            self.dynamodb.update_item,
            TableName=self.name,
            Key=ticket._key(),
            UpdateExpression="SET #lease = :until",
            ConditionExpression="#lease = :seen",
            ExpressionAttributeNames={"#lease": "leaseExpiresAt"},
            ExpressionAttributeValues={
                ":until": {"N": _num(until)},
                ":seen": {"N": _num(ticket.lease_expires_at)},
            },
        )

    def grant(self, ticket: Ticket, *, limit: int, now: float, until: float) -> bool:
        """Give the ticket a slot if fewer than ``limit`` are held: both writes or neither."""
        return self._conditional(
            self.dynamodb.transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.name,
                        "Key": _SLOTS_KEY,
                        "UpdateExpression": "SET held = if_not_exists(held, :zero) + :one, #limit = :limit",
                        "ConditionExpression": "attribute_not_exists(held) OR held < :limit",
                        "ExpressionAttributeNames": {"#limit": "limit"},
                        "ExpressionAttributeValues": {
                            ":zero": {"N": "0"},
                            ":one": {"N": "1"},
                            ":limit": {"N": str(limit)},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.name,
                        "Key": ticket._key(),
                        "UpdateExpression": "SET #state = :holding, grantedAt = :now, #lease = :until",
                        "ConditionExpression": "#state = :waiting",
                        "ExpressionAttributeNames": {"#state": "state", "#lease": "leaseExpiresAt"},
                        "ExpressionAttributeValues": {
                            ":holding": {"S": HOLDING},
                            ":waiting": {"S": WAITING},
                            ":now": {"N": _num(now)},
                            ":until": {"N": _num(until)},
                        },
                    }
                },
            ],
        )

    def release(self, ticket: Ticket, *, only_if_lease_unchanged: bool = False) -> bool:
        """Give a holding ticket's slot back and remove the ticket, in one transaction; False when it
        was already given back (or, with ``only_if_lease_unchanged``, renewed meanwhile)."""
        condition = "#state = :holding"
        values: dict[str, Any] = {":holding": {"S": HOLDING}}
        if only_if_lease_unchanged:
            condition += " AND #lease = :seen"
            values[":seen"] = {"N": _num(ticket.lease_expires_at)}
        released = self._conditional(
            self.dynamodb.transact_write_items,
            TransactItems=[
                {
                    "Delete": {
                        "TableName": self.name,
                        "Key": ticket._key(),
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": {"#state": "state", "#lease": "leaseExpiresAt"},
                        "ExpressionAttributeValues": values,
                    }
                },
                {
                    "Update": {
                        "TableName": self.name,
                        "Key": _SLOTS_KEY,
                        "UpdateExpression": "SET held = held - :one",
                        "ConditionExpression": "held > :zero",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
                    }
                },
            ],
        )
        if released or only_if_lease_unchanged:
            return released
        # Refused: the ticket is gone (given back already), or the count is already 0 (a count that
        # disagrees with a holding ticket can only come from a hand edit): then the ticket goes alone.
        current = self.ticket(ticket.execution_arn)
        if current is None or current.state != HOLDING or self.slots()[0] > 0:
            return False
        return self.drop(current, state=HOLDING)

    def drop(self, ticket: Ticket, *, state: str = WAITING, only_if_lease_unchanged: bool = False) -> bool:
        """Remove a ticket without a slot (or, with ``state=HOLDING``, one whose slot is not counted)."""
        condition = "#state = :state"
        values: dict[str, Any] = {":state": {"S": state}}
        if only_if_lease_unchanged:
            condition += " AND #lease = :seen"
            values[":seen"] = {"N": _num(ticket.lease_expires_at)}
        return self._conditional(
            self.dynamodb.delete_item,
            TableName=self.name,
            Key=ticket._key(),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#state": "state", "#lease": "leaseExpiresAt"},
            ExpressionAttributeValues=values,
        )

    @staticmethod
    def _conditional(call: Any, **params: Any) -> bool:
        if "ExpressionAttributeNames" in params:
            # DynamoDB rejects names an expression does not use.
            used = " ".join(
                str(v) for k, v in params.items() if k.endswith("Expression") and isinstance(v, str)
            )
            params["ExpressionAttributeNames"] = {
                k: v for k, v in params["ExpressionAttributeNames"].items() if k in used
            }
        for item in params.get("TransactItems", []):
            for action in item.values():
                used = " ".join(str(v) for k, v in action.items() if k.endswith("Expression"))
                if "ExpressionAttributeNames" in action:
                    action["ExpressionAttributeNames"] = {
                        k: v for k, v in action["ExpressionAttributeNames"].items() if k in used
                    }
        try:
            call(**params)
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True


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
    table = QueueTable(dynamodb, table_name)
    tickets = table.tickets()
    in_use, limit = table.slots()
    return view_of(tickets, in_use, limit)


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
    ticket = table.join(
        Ticket(
            execution_arn=execution_arn,
            order=upload_order(started_at, execution_name),
            run=run.run,
            job_name=run.names.job_name,
            state=WAITING,
            joined_at=now,
            lease_expires_at=now + settings.lease_seconds,
        )
    )
    return {
        "order": ticket.order,
        "joinedAt": ticket.joined_at,
        "attempt": 0,
        "waitSeconds": 0,
        "waitedSeconds": 0,
        "bedrockRefusals": 0,
    }


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
    state: dict[str, Any] = {k: previous[k] for k in _KEPT if k in previous}
    state.update(waitedSeconds=waited, waitSeconds=0)
    until = now + settings.lease_seconds
    ticket = table.ticket(execution_arn)
    if ticket is None:
        # Joined, then dropped after a lease expired (or never joined): back in line at its own place.
        order = str(previous.get("order") or upload_order(now * 1000, execution_arn.rsplit(":", 1)[-1]))
        ticket = table.join(
            Ticket(execution_arn, order, run.run, run.names.job_name, WAITING, now, until, waiting_since=now)
        )
    refusal = previous.get("refusal")
    if refusal:
        said = error_message(str(refusal.get("Cause", "")))
        return _bedrock_refused(
            table, bedrock, sns, settings, ticket=ticket, run=run, state=state, said=said, now=now
        )
    if ticket.state == HOLDING:
        table.renew(ticket, until)
        return {**state, "status": "granted"}

    table.renew(ticket, until, waiting_since=now)
    tickets = table.tickets()
    if reclaim_expired(
        table, bedrock, tickets, now=now, lease_seconds=settings.lease_seconds, me=execution_arn
    ):
        tickets = table.tickets()
    in_use, _ = table.slots()
    line = [t for t in tickets if t.state == WAITING]
    place = next((i for i, t in enumerate(line) if t.execution_arn == execution_arn), len(line))
    free = settings.max_concurrent_jobs - in_use
    if place < free and table.grant(ticket, limit=settings.max_concurrent_jobs, now=now, until=until):
        return {**state, "status": "granted", "position": 0, "grantedAt": now}

    view = view_of(table.tickets(), *table.slots())
    entry = view.entry(execution_arn)
    position = entry.position if entry and entry.position else place + 1
    if waited >= settings.max_queue_seconds:
        raise QuotaWaitExpired(_gave_up(view, execution_arn, waited, settings))
    attempt = int(previous.get("attempt") or 0)
    if attempt == 0:
        publish(
            sns, settings.topic_arn, waiting_notice(view, run, execution_arn, settings), "waiting", run.run
        )
    return {
        **state,
        "status": "waiting",
        "reason": "queue",
        "position": position,
        "ahead": [e.run for e in view.ahead_of(execution_arn)],
        "attempt": attempt + 1,
        "waitSeconds": min(wait_seconds(attempt, settings.wait_cap_seconds), _left(settings, waited)),
    }


#: The ``$.queue`` fields that carry over from one Take to the next.
_KEPT = ("order", "joinedAt", "attempt", "bedrockRefusals", "grantedAt")


def _left(settings: TrainingQueueSettings, waited: int) -> int:
    return max(1, settings.max_queue_seconds - waited)


def _bedrock_refused(
    table: QueueTable,
    bedrock: Any,
    sns: Any,
    settings: TrainingQueueSettings,
    *,
    ticket: Ticket,
    run: RunRef,
    state: dict[str, Any],
    said: str,
    now: float,
) -> dict[str, Any]:
    running = running_jobs(bedrock)
    if not running:
        raise BedrockQuotaExceeded(
            f"{said} No customization job is running in this account, so this quota is not the one on "
            "concurrent jobs and waiting would not help; check Service Quotas for Amazon Bedrock."
        )
    waited = int(state["waitedSeconds"])
    if waited >= settings.max_queue_seconds:
        view = view_of(table.tickets(), *table.slots())
        raise QuotaWaitExpired(_gave_up(view, ticket.execution_arn, waited, settings, bedrock_said=said))
    table.renew(ticket, now + settings.lease_seconds)
    refusals = int(state.get("bedrockRefusals") or 0)
    if refusals == 0:
        publish(
            sns, settings.topic_arn, bedrock_full_notice(run, said, running, settings), "waiting", run.run
        )
    return {
        **state,
        "status": "waiting",
        "reason": "bedrock-quota",
        "bedrockRefusals": refusals + 1,
        "runningJobs": len(running),
        "waitSeconds": min(wait_seconds(refusals, settings.wait_cap_seconds), _left(settings, waited)),
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


def reclaim_expired(
    table: QueueTable, bedrock: Any, tickets: Iterable[Ticket], *, now: float, lease_seconds: int, me: str
) -> list[str]:
    """Check the other tickets whose lease expired: drop a waiting one; give a holding one's slot back
    when Bedrock says its job has ended or does not exist, renew it while the job still runs.
    Returns what was reclaimed."""
    reclaimed: list[str] = []
    for ticket in tickets:
        if ticket.execution_arn == me or ticket.lease_expires_at > now:
            continue
        if ticket.state == WAITING:
            if table.drop(ticket, only_if_lease_unchanged=True):
                reclaimed.append(f"{ticket.run}: its ticket, not renewed since its lease expired")
            continue
        job = find_job(bedrock, ticket.job_name)
        status = str(job.get("status")) if job else None
        if status in JOB_RUNNING:
            table.extend_if_unchanged(ticket, now + lease_seconds)
        elif table.release(ticket, only_if_lease_unchanged=True):
            reclaimed.append(
                f"{ticket.run}: its slot, whose lease expired with its job {status or 'never started'}"
            )
    return reclaimed


def release_slot(table: QueueTable, execution_arn: str) -> dict[str, Any]:
    """ "Release training slot", once the job has completed: the slot goes to the next run in line."""
    ticket = table.ticket(execution_arn)
    if ticket is None:
        return {"released": False, "summary": "no ticket: the slot was given back already"}
    if ticket.state == WAITING:
        table.drop(ticket)
        return {"released": False, "summary": "left the training queue (it held no slot)"}
    released = table.release(ticket)
    return {
        "released": released,
        "summary": "gave back its training slot" if released else "the slot was given back already",
    }


@dataclass(frozen=True)
class RunSlot:
    """A run's place in the queue, as the clean-ups see it (see ``cleanup.Slot``)."""

    table: QueueTable
    execution_arn: str

    def give_back(self, job_status: str | None) -> tuple[str | None, str | None]:
        """Leave the queue, or give the slot back unless the run's own job still runs (Bedrock counts
        a job against the quota until it has ended): ``(what was done, what has to wait)``."""
        ticket = self.table.ticket(self.execution_arn)
        if ticket is None:
            return None, None
        if ticket.state == WAITING:
            self.table.drop(ticket)
            return "left the training queue", None
        if job_status in JOB_RUNNING:
            return None, f"its training slot is kept until its job ({job_status}) has ended"
        if self.table.release(ticket):
            return "gave back its training slot", None
        return None, None


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


def _gave_up(
    view: QueueView,
    execution_arn: str,
    waited: int,
    settings: TrainingQueueSettings,
    *,
    bedrock_said: str | None = None,
) -> str:
    ahead = view.ahead_of(execution_arn)
    entry = view.entry(execution_arn)
    where = (
        f"Bedrock kept refusing its job for a quota ({bedrock_said})"
        if bedrock_said
        else f"it was still number {entry.position if entry else '?'} in line"
        + (f", behind {', '.join(e.run for e in ahead)}" if ahead else "")
    )
    return (
        f"Waited {_hours(waited)} for a training slot and gave up (max_queue_hours = "
        f"{_hours(settings.max_queue_seconds)}): {where}; slots {_slots(view, settings)}. Nothing was "
        "trained or bought. Upload train.jsonl again to queue again, or ask the platform team to raise "
        "max_concurrent_jobs (or the account's Bedrock quota) or max_queue_hours."
    )


def run_slot(dynamodb: Any, table_name: str | None, execution_arn: str) -> RunSlot | None:
    """The execution's place in the queue for a clean-up (None when the stack has no queue table)."""
    return RunSlot(QueueTable(dynamodb, table_name), execution_arn) if table_name else None
