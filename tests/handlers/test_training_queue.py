"""The training queue against moto's DynamoDB and SNS: upload order, races on the last slot, releases
that happen once, leases checked against the job's real status, waiting notices and giving up."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import TrainingQueueSettings
from bedrock_finetune.training_queue import (
    HOLDING,
    WAITING,
    QueueTable,
    RunSlot,
    join_queue,
    list_queue,
    queue_wait_seconds,
    take_slot,
    upload_order,
)
from tests.conftest import FakeLambdaContext, subscribed_inbox
from tests.handlers.test_handlers import set_settings

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15), so leases and waits are exact
LEASE = 3000
MACHINE = "arn:aws:states:us-west-2:123456789012:execution:Pipeline"


def run_ref(name: str) -> RunRef:
    return RunRef(bucket="data-bucket", key=f"datasets/{name}/train.jsonl", run=name, version_id=f"v-{name}")


def execution(name: str) -> str:
    return f"{MACHINE}:exec-{name}"


@dataclass
class FakeBedrock:
    """The two Bedrock reads the queue makes: a job's status (by name), and the jobs in progress."""

    statuses: dict[str, str] = field(default_factory=dict)

    def get_model_customization_job(self, *, jobIdentifier: str) -> dict[str, Any]:
        if jobIdentifier not in self.statuses:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no such job"}},
                "GetModelCustomizationJob",
            )
        return {
            "jobArn": f"arn:job/{jobIdentifier}",
            "jobName": jobIdentifier,
            "status": self.statuses[jobIdentifier],
        }

    def list_model_customization_jobs(self, **params: Any) -> dict[str, Any]:
        running = [n for n, s in self.statuses.items() if s == params.get("statusEquals")]
        return {"modelCustomizationJobSummaries": [{"jobArn": f"arn:job/{n}"} for n in running]}

    def job_of(self, name: str, status: str) -> None:
        self.statuses[run_ref(name).names.job_name] = status


@dataclass
class World:
    table: QueueTable
    sns: Any
    queue_url: str
    settings: TrainingQueueSettings
    bedrock: FakeBedrock

    def join(self, name: str, *, uploaded_ms: int, now: float = T0) -> dict[str, Any]:
        return join_queue(
            self.table, self.settings, run=run_ref(name), execution_arn=execution(name),
            execution_name=f"exec-{name}", started_at=str(uploaded_ms), now=now,
        )  # fmt: skip

    def take(self, name: str, previous: dict[str, Any], *, now: float = T0) -> dict[str, Any]:
        return take_slot(
            self.table, self.bedrock, self.sns, self.settings,
            run=run_ref(name), execution_arn=execution(name), previous=previous, now=now,
        )  # fmt: skip

    def notices(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-west-2")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def held(self) -> int:
        return self.table.read().held

    def ticket(self, name: str) -> Any:
        return self.table.read().ticket(execution(name))


def create_table(name: str = "queue") -> str:
    boto3.client("dynamodb", region_name="us-west-2").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def world(aws: None) -> World:
    """Given a queue of 2 slots whose runs may wait 1 hour, a topic with an inbox, and Bedrock's jobs."""
    topic_arn, queue_url = subscribed_inbox()
    settings = TrainingQueueSettings(
        queue_table=create_table(),
        max_concurrent_jobs=2,
        max_queue_seconds=3600,
        wait_cap_seconds=600,
        lease_seconds=LEASE,
        topic_arn=topic_arn,
    )
    return World(
        table=QueueTable(boto3.client("dynamodb", region_name="us-west-2"), "queue"),
        sns=boto3.client("sns", region_name="us-west-2"),
        queue_url=queue_url,
        settings=settings,
        bedrock=FakeBedrock(),
    )


def test_upload_order_reads_the_execution_start_time_in_every_shape() -> None:
    # Step Functions' $$.Execution.StartTime, the emulation's, and an event's epoch milliseconds
    assert upload_order("2027-01-15T08:00:00.250Z", "e") == "001800000000250#e"
    assert upload_order("2027-01-15 08:00:00.250000+00:00", "e") == "001800000000250#e"
    assert upload_order(1_800_000_000_250, "e") == "001800000000250#e"
    assert upload_order("2027-01-15T08:00:00.250Z", "a") < upload_order("2027-01-15T08:00:00.251Z", "0")


def test_slots_go_to_the_oldest_uploads_even_when_a_younger_run_asks_first(world: World) -> None:
    # Given three uploads, a before b before c
    queue = {n: world.join(n, uploaded_ms=ms) for n, ms in (("a", 1000), ("b", 2000), ("c", 3000))}
    # When c is validated first and asks for a slot while a and b are still being validated
    c = world.take("c", queue["c"])
    # Then c waits: the two slots belong to a and b, which were uploaded first
    assert (c["status"], c["position"], c["ahead"]) == ("waiting", 3, ["a", "b"])
    assert c["waitSeconds"] == 600  # a whole round of slots is ahead of it: no point asking in 2 minutes
    # And a and b get them when they ask
    assert world.take("a", queue["a"])["status"] == "granted"
    assert world.take("b", queue["b"])["status"] == "granted"
    assert world.held() == 2
    # When a's job has completed and its end gives a's slot back (JobEnded)
    assert RunSlot(world.table, execution("a")).give_back("Completed") == (
        "gave back its training slot",
        None,
    )
    # Then c, next in line, gets it on its next try, after the back-off doubled
    again = world.take("c", c)
    assert again["status"] == "granted"
    assert again["waitedSeconds"] == 600
    assert [(e.run, e.state) for e in list_queue(world.table.dynamodb, "queue").entries] == [
        ("b", "training"),
        ("c", "training"),
    ]


def test_two_runs_racing_for_the_last_slot_cannot_both_get_it(world: World) -> None:
    # Given a holds one of the two slots, and c (uploaded at 3 s) asks for the other
    world.take("a", world.join("a", uploaded_ms=1000))
    world.bedrock.job_of("a", "InProgress")
    c_queue = world.join("c", uploaded_ms=3000)
    # When b (uploaded at 2 s, ahead of c) joins and takes the slot between c's read and c's write
    raced: list[dict[str, Any]] = []

    def b_gets_there_first() -> None:
        if not raced:
            raced.append(world.take("b", world.join("b", uploaded_ms=2000)))

    racing = dataclasses.replace(
        world, table=dataclasses.replace(world.table, before_write=b_gets_there_first)
    )
    c = racing.take("c", c_queue)
    # Then only one write of the two computed from the same version lands: b holds the last slot,
    # and c, computing again from the new version, waits (nobody ahead of it, no slot free)
    assert raced[0]["status"] == "granted"
    assert (c["status"], c["ahead"], c["inUse"]) == ("waiting", [], 2)
    assert world.held() == 2
    assert world.ticket("c").state == WAITING


def test_a_write_computed_from_an_old_version_is_refused(world: World) -> None:
    world.join("a", uploaded_ms=1000)
    seen = world.table.read()
    assert world.table.write(seen, seen.tickets)  # someone else writes first
    assert world.table.write(seen, ()) is False  # the stale write does not land
    assert world.ticket("a") is not None


def test_a_slot_is_given_back_once_however_many_clean_ups_try(world: World) -> None:
    queue = world.join("a", uploaded_ms=1000)
    world.take("a", queue)
    slot = RunSlot(world.table, execution("a"))
    # When the job's end (JobEnded), then the failure chain's clean-up and the ended-execution clean-up
    # all give the same slot back
    assert slot.give_back("Completed") == ("gave back its training slot", None)
    assert slot.give_back("Completed") == (None, None)
    assert slot.give_back("Failed") == (None, None)
    # Then it was given back once
    assert world.held() == 0


def test_the_first_wait_is_announced_with_the_place_and_who_is_ahead(world: World) -> None:
    for name, ms in (("a", 1000), ("b", 2000)):
        world.take(name, world.join(name, uploaded_ms=ms))
    world.bedrock.job_of("a", "InProgress")
    # When c starts waiting, and then waits again
    first = world.take("c", world.join("c", uploaded_ms=3000))
    world.take("c", first, now=T0 + 120)
    # Then one notice says so: its place, what trains, what to expect
    [notice] = world.notices()
    assert notice["Subject"] == "[fine-tuning] c: waiting for a training slot (position 1)"
    message = notice["Message"]
    assert "position 1 of 1 in line" in message
    assert "Slots: 2 of 2 in use (training: a, b)" in message
    assert "after 1 h of waiting (max_queue_hours)" in message
    assert notice["MessageAttributes"]["outcome"]["Value"] == "waiting"


def test_a_run_that_waited_max_queue_hours_gives_up_saying_why(world: World) -> None:
    for name, ms in (("a", 1000), ("b", 2000)):
        world.take(name, world.join(name, uploaded_ms=ms))
        world.bedrock.job_of(name, "InProgress")  # their jobs train on
    queue = world.join("c", uploaded_ms=3000)
    # Given c has waited 3,480 s of its 3,600 and waits 120 s more
    queue.update(attempt=5, waitedSeconds=3480, waitSeconds=120)
    # When it asks again and still finds no slot
    with pytest.raises(QuotaWaitExpired) as gave_up:
        world.take("c", queue, now=T0 + 3600)
    # Then the error (the run's failure cause) says how long, where it stood, and that nothing was bought
    assert str(gave_up.value).startswith(
        "Waited 1 h for a training slot and gave up (max_queue_hours = 1 h): it was still number 1 in line"
    )
    assert "slots 2 of 2 in use (training: a, b)" in str(gave_up.value)
    assert "Nothing was trained or bought" in str(gave_up.value)


def test_a_free_slot_wins_over_giving_up(world: World) -> None:
    queue = world.join("a", uploaded_ms=1000)
    queue.update(attempt=9, waitedSeconds=3600, waitSeconds=600)  # past the maximum
    assert world.take("a", queue)["status"] == "granted"


def test_bedrocks_job_quota_makes_the_run_wait_with_back_off_keeping_its_slot(world: World) -> None:
    # Given a run with a slot whose job Bedrock refused: another tool holds the account's jobs
    granted = world.take("a", world.join("a", uploaded_ms=1000))
    world.bedrock.statuses["other-tools-job"] = "InProgress"
    cause = json.dumps(
        {"errorType": "BedrockQuotaExceeded", "errorMessage": "ServiceQuotaExceededException: too many jobs"}
    )
    refused = {**granted, "refusal": {"Error": "BedrockQuotaExceeded", "Cause": cause}}
    # When the queue hears of it
    first = world.take("a", refused)
    # Then the run waits (2 minutes, then 4...), still holding its slot, and is told why once
    assert (first["status"], first["reason"], first["waitSeconds"], first["runningJobs"]) == (
        "waiting", "bedrock-quota", 120, 1,
    )  # fmt: skip
    assert world.ticket("a").state == HOLDING
    second = world.take("a", {**world.take("a", first), "refusal": refused["refusal"]})
    assert second["waitSeconds"] == 240
    [notice] = world.notices()
    assert notice["Subject"] == "[fine-tuning] a: Bedrock's job quota is full, waiting"
    assert "Bedrock said: ServiceQuotaExceededException: too many jobs" in notice["Message"]
    # And after the wait it goes on to start its job again
    assert world.take("a", second)["status"] == "granted"


def test_a_quota_error_with_no_job_running_is_not_the_job_quota_and_fails(world: World) -> None:
    granted = world.take("a", world.join("a", uploaded_ms=1000))
    cause = json.dumps({"errorMessage": "ServiceQuotaExceededException: records per job"})
    with pytest.raises(BedrockQuotaExceeded) as failed:
        world.take("a", {**granted, "refusal": {"Error": "BedrockQuotaExceeded", "Cause": cause}})
    assert "No customization job is running in this account" in str(failed.value)


def test_a_lapsed_lease_is_checked_against_the_jobs_real_status(world: World) -> None:
    # Given a and b hold the two slots, and c waits
    for name, ms in (("a", 1000), ("b", 2000)):
        world.take(name, world.join(name, uploaded_ms=ms))
    waiting = world.take("c", world.join("c", uploaded_ms=3000))
    # And both holders' executions crashed long ago: a's job has completed, b's still trains
    world.bedrock.job_of("a", "Completed")
    world.bedrock.job_of("b", "InProgress")
    later = T0 + LEASE + 1
    # When c asks again after their leases lapsed
    result = world.take("c", waiting, now=later)
    # Then a's slot is reclaimed (its job has ended) and goes to c; b's is kept, its lease renewed
    assert result["status"] == "granted"
    assert world.ticket("a") is None
    assert world.ticket("b").lease_expires_at == later + LEASE
    assert world.held() == 2


def test_a_holder_that_never_started_its_job_is_reclaimed(world: World) -> None:
    world.take("a", world.join("a", uploaded_ms=1000))
    world.take("b", world.join("b", uploaded_ms=2000))
    world.bedrock.job_of("b", "InProgress")
    waiting = world.take("c", world.join("c", uploaded_ms=3000))
    # a crashed between its slot and its job: Bedrock has no job of it
    assert world.take("c", waiting, now=T0 + LEASE + 1)["status"] == "granted"
    assert world.ticket("a") is None


def test_a_lapsed_waiting_ticket_is_dropped_and_its_run_comes_back_to_its_own_place(world: World) -> None:
    # Given a queue of one slot that a holds, and b (uploaded before c) that stopped renewing its ticket
    world.settings = dataclasses.replace(world.settings, max_concurrent_jobs=1)
    world.take("a", world.join("a", uploaded_ms=1000))
    world.bedrock.job_of("a", "InProgress")
    b_queue = world.join("b", uploaded_ms=2000)
    c_first = world.take("c", world.join("c", uploaded_ms=3000), now=T0 + LEASE - 10)
    assert c_first["ahead"] == ["b"]
    # When c looks again after b's lease lapsed: b's ticket goes
    c_again = world.take("c", c_first, now=T0 + LEASE + 1)
    assert c_again["ahead"] == []
    # Then when b comes back (it was only slow), it is in line again ahead of c, at its upload time
    b_back = world.take("b", b_queue, now=T0 + LEASE + 2)
    assert (b_back["status"], b_back["position"]) == ("waiting", 1)
    view = list_queue(world.table.dynamodb, "queue")
    assert [e.run for e in view.in_line] == ["b", "c"]


def test_the_failure_chain_gives_the_slot_back_only_once_the_stopped_job_has_ended(world: World) -> None:
    from tests.handlers.test_cleanup import NAMES

    # Given run-1 holds a slot and its job is still training when its run fails
    ticket = world.join("run-1", uploaded_ms=1000)
    world.take("run-1", ticket)
    slot = RunSlot(world.table, execution("run-1"))
    bedrock = StoppableBedrock({NAMES.job_name: "InProgress"})
    # When the clean-up stops the job: Bedrock still counts it while it is Stopping
    first = clean_up_run(bedrock, NAMES, max_attempts=5, slot=slot)
    assert (first["retry"], world.held()) == (True, 1)
    assert "its training slot is kept until its job (Stopping) has ended" in first["summary"]
    # Then the next attempt, once the job is Stopped, gives the slot back
    bedrock.statuses[NAMES.job_name] = "Stopped"
    second = clean_up_run(bedrock, NAMES, previous=first, max_attempts=5, slot=slot)
    assert (second["retry"], world.held()) == (False, 0)
    assert "gave back its training slot" in second["summary"]


def test_a_run_that_fails_before_its_slot_just_leaves_the_line(world: World) -> None:
    from tests.handlers.test_cleanup import NAMES

    world.join("run-1", uploaded_ms=1000)  # e.g. its dataset is invalid
    result = clean_up_run(StoppableBedrock({}), NAMES, slot=RunSlot(world.table, execution("run-1")))
    assert result["summary"] == "left the training queue"
    assert list_queue(world.table.dynamodb, "queue").entries == ()


@dataclass
class StoppableBedrock(FakeBedrock):
    """Bedrock for the clean-up: stopping a job makes it Stopping; no throughput or deployment exists."""

    def stop_model_customization_job(self, *, jobIdentifier: str) -> dict[str, Any]:
        self.statuses[jobIdentifier] = "Stopping"
        return {}

    def get_provisioned_model_throughput(self, **_: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "none"}},
            "GetProvisionedModelThroughput",
        )

    def get_custom_model_deployment(self, **_: Any) -> dict[str, Any]:
        raise ClientError(
            {"Error": {"Code": "ResourceNotFoundException", "Message": "none"}},
            "GetCustomModelDeployment",
        )

    def list_tags_for_resource(self, **_: Any) -> dict[str, Any]:
        return {"tags": []}


def test_the_queue_as_the_cli_lists_it(world: World) -> None:
    for name, ms in (("a", 1000), ("b", 2000), ("c", 3000)):
        world.join(name, uploaded_ms=ms)
    world.take("a", {})
    world.take("c", world.join("c", uploaded_ms=3000))
    document = list_queue(world.table.dynamodb, "queue").to_dict()
    # (a was given its slot without a join: a run whose ticket went comes back at its own place)
    assert (document["slots"], document["inUse"], document["length"]) == (2, 1, 2)
    assert [(e["run"], e["state"], e["position"]) for e in document["entries"]] == [
        ("a", "training", None),
        ("b", "preparing", 1),
        ("c", "waiting", 2),
    ]
    assert document["entries"][0]["executionArn"] == execution("a")


def test_the_handler_joins_and_takes(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers.training_queue import handler

    set_settings(monkeypatch, world.settings)
    payload = {"run": run_ref("a").to_state(), "executionArn": execution("a"), "executionName": "exec-a"}
    joined = handler(
        {**payload, "action": "join", "startedAt": "2027-01-15T08:00:00.000Z"}, FakeLambdaContext()
    )
    assert joined["order"] == "001800000000000#exec-a"
    taken = handler({**payload, "action": "take", "queue": joined}, FakeLambdaContext())
    assert taken["status"] == "granted"
    # The slot is given back by the job's end (JobEnded), not by a state of this function
    with pytest.raises(ValueError, match="release"):
        handler({**payload, "action": "release"}, FakeLambdaContext())


@pytest.mark.parametrize(
    ("attempt", "position", "wait"),
    [
        (0, 1, 120),  # next in line: the back-off, 2 minutes first
        (2, 2, 480),
        (5, 1, 600),  # the cap
        (0, 3, 600),  # a whole round of 2 slots ahead: at least one cap
        (0, 7, 1800),  # 3 rounds ahead
        (0, 40, 3600),  # far back: at most 6 caps
    ],
)
def test_a_run_further_back_asks_less_often(attempt: int, position: int, wait: int) -> None:
    assert queue_wait_seconds(attempt, position, 2, 600) == wait


def test_an_aborted_run_that_was_waiting_leaves_the_line_in_the_ended_execution_clean_up(
    world: World,
) -> None:
    from bedrock_finetune.ended_execution import clean_up_ended_execution
    from bedrock_finetune.settings import CleanUpSettings

    # Given run-1 waits for a slot (no job yet) when its execution is aborted
    world.join("run-1", uploaded_ms=1000)
    detail = {"executionArn": execution("run-1"), "status": "ABORTED"}
    # When the clean-up of ended executions runs for it
    result = clean_up_ended_execution(
        StoppableBedrock({}), lambda _: [], CleanUpSettings(max_attempts=3), run=run_ref("run-1"),
        detail=detail, previous={}, slot=RunSlot(world.table, execution("run-1")),
    )  # fmt: skip
    # Then its ticket is gone, and the notice's summary says so
    assert "left the training queue" in result["summary"]
    assert world.ticket("run-1") is None


def test_a_slot_its_own_failure_chain_could_not_give_back_is_given_back_quietly(world: World) -> None:
    from bedrock_finetune.ended_execution import clean_up_ended_execution
    from bedrock_finetune.settings import CleanUpSettings

    # Given run-1 holds a slot, its job failed, and its failure chain's clean-up failed too
    world.take("run-1", world.join("run-1", uploaded_ms=1000))
    bedrock = StoppableBedrock({run_ref("run-1").names.job_name: "Failed"})
    fail_state = [{"type": "FailStateEntered"}]
    # When the clean-up of ended executions sees the FAILED execution that ended in its Fail state
    result = clean_up_ended_execution(
        bedrock, lambda _: fail_state, CleanUpSettings(max_attempts=3), run=run_ref("run-1"),
        detail={"executionArn": execution("run-1"), "status": "FAILED"}, previous={},
        slot=RunSlot(world.table, execution("run-1")),
    )  # fmt: skip
    # Then it says nothing (the chain reported), but the slot is back
    assert result["handled"] is True
    assert world.held() == 0


def test_a_run_bedrock_keeps_refusing_gives_up_after_max_queue_hours(world: World) -> None:
    granted = world.take("a", world.join("a", uploaded_ms=1000))
    world.bedrock.statuses["other-tools-job"] = "InProgress"
    cause = json.dumps({"errorMessage": "ServiceQuotaExceededException: too many jobs"})
    late = {**granted, "waitedSeconds": 3000, "waitSeconds": 600}
    with pytest.raises(QuotaWaitExpired) as gave_up:
        world.take("a", {**late, "refusal": {"Error": "BedrockQuotaExceeded", "Cause": cause}})
    assert "Bedrock kept refusing its job for a quota (ServiceQuotaExceededException: too many jobs)" in str(
        gave_up.value
    )


def test_every_fallback_tick_reports_the_queue_so_a_quiet_queue_charts_as_zero(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bedrock_finetune import metrics
    from bedrock_finetune.settings import JobWaitSettings
    from handlers.job_ended import handler

    # Given a stack with a queue (one run training, one waiting) and no run waiting for its job
    bucket = "data-bucket"
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    set_settings(monkeypatch, JobWaitSettings(bucket_name=bucket, queue_table="queue"))
    world.take("a", world.join("a", uploaded_ms=1000))
    world.join("b", uploaded_ms=2000)
    capsys.readouterr()
    # When the fallback schedule ticks
    result = handler({"detail-type": "Scheduled Event", "detail": {}}, FakeLambdaContext())
    # Then it reports the queue's length and the slots in use, as the queue's own states do
    assert result["queue"] == {"inLine": 1, "inUse": 1}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = {
        name: document[name]
        for document in emitted
        for name in (metrics.QUEUE_LENGTH, metrics.TRAINING_SLOTS_IN_USE)
        if name in document
    }
    assert values == {metrics.QUEUE_LENGTH: [1.0], metrics.TRAINING_SLOTS_IN_USE: [1.0]}
