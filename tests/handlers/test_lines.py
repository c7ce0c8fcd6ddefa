"""A line's record, its rollback and time to live, and the answer to an approval request: plain logic
over S3 (moto) and Bedrock and Step Functions calls (botocore Stubber)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune import approvals, lines
from bedrock_finetune.run_ref import RunRef

BUCKET = "data-bucket"
PT = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdefghijkl"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def run(version: str) -> RunRef:
    return RunRef(bucket=BUCKET, key="datasets/bot/train.jsonl", run="bot", version_id=version)


def job(n: int) -> dict[str, str]:
    return {"jobArn": f"arn:job/{n}", "outputModelArn": f"arn:model/{n}"}


ENDPOINT = {
    "kind": "provisioned_throughput",
    "endpointName": "line-bot-pt",
    "endpointArn": PT,
    "mode": "provisioned",
}


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "bedrock", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def serve(s3: Any, n: int, *, served: bool = True, execution: str | None = None) -> dict[str, Any]:
    return lines.record_version(
        s3,
        BUCKET,
        run(f"v{n}"),
        execution_arn=execution or f"arn:exec/{n}",
        job=job(n),
        mode="provisioned",
        endpoint=ENDPOINT if served else None,
        served=served,
        why="test",
        stack_name="S",
        region="us-west-2",
        now=NOW + timedelta(hours=n),
    )


def test_versions_of_a_line_keep_the_previous_model_for_rollback(s3: Any) -> None:
    # Given three served versions and one kept (not approved)
    serve(s3, 1)
    serve(s3, 2)
    serve(s3, 3, served=False)
    record = serve(s3, 4)
    # Then the latest serves, the one before is the rollback target, older ones are retired
    assert [(v["version"], v["status"]) for v in record["versions"]] == [
        (1, "retired"),
        (2, "previous"),
        (3, "kept"),
        (4, "served"),
    ]
    assert record["served"]["modelArn"] == "arn:model/4"
    assert record["rollback"]["toVersion"] == 2
    assert record["rollback"]["awsCli"] == (
        f"aws bedrock update-provisioned-model-throughput --provisioned-model-id {PT} "
        "--desired-model-id arn:model/2 --region us-west-2"
    )
    assert json.loads(s3.get_object(Bucket=BUCKET, Key="reports/bot/line.json")["Body"].read()) == record


def test_a_duplicate_execution_of_one_upload_is_one_version(s3: Any) -> None:
    serve(s3, 1, execution="arn:exec/first")
    record = serve(s3, 1, execution="arn:exec/duplicate")
    assert [v["version"] for v in record["versions"]] == [1]


def test_rollback_swaps_the_previous_model_back_and_can_be_undone(
    s3: Any, bedrock: tuple[Any, Stubber]
) -> None:
    client, stubber = bedrock
    serve(s3, 1)
    serve(s3, 2)
    stubber.add_response(
        "update_provisioned_model_throughput", {}, {"provisionedModelId": PT, "desiredModelId": "arn:model/1"}
    )
    done = lines.rollback(client, s3, BUCKET, "bot", stack_name="S", region="us-west-2", now=NOW)
    assert (done["from"], done["to"], done["endpointArn"]) == (2, 1, PT)
    assert done["record"]["rollback"]["toVersion"] == 2  # undo goes back to version 2
    stubber.add_response(
        "update_provisioned_model_throughput", {}, {"provisionedModelId": PT, "desiredModelId": "arn:model/2"}
    )
    again = lines.rollback(client, s3, BUCKET, "bot", stack_name="S", region="us-west-2", now=NOW)
    assert (again["from"], again["to"]) == (1, 2)


def test_rollback_without_a_previous_version_says_why(s3: Any, bedrock: tuple[Any, Stubber]) -> None:
    client, _ = bedrock
    with pytest.raises(lines.LineError, match="has no record"):
        lines.rollback(client, s3, BUCKET, "bot", stack_name="S", region="us-west-2")
    serve(s3, 1)
    with pytest.raises(lines.LineError, match="no previous model to roll back to"):
        lines.rollback(client, s3, BUCKET, "bot", stack_name="S", region="us-west-2")


class FakeScheduler:
    """The two schedule calls the line logic makes, recorded."""

    def __init__(self) -> None:
        self.schedules: dict[str, dict[str, Any]] = {}

    def create_schedule(self, **params: Any) -> None:
        self.schedules[params["Name"]] = params

    def update_schedule(self, **params: Any) -> None:
        assert params["Name"] in self.schedules
        self.schedules[params["Name"]] = params

    def get_schedule(self, GroupName: str, Name: str) -> dict[str, Any]:
        return self.schedules[Name]


def test_a_time_to_live_schedules_a_reminder_and_a_deletion_and_extend_moves_both(s3: Any) -> None:
    scheduler = FakeScheduler()
    serve(s3, 1)
    ttl = lines.set_time_to_live(
        scheduler,
        s3,
        BUCKET,
        "bot",
        expires_at=NOW + timedelta(hours=48),
        reminder_hours=24,
        group="S-serving",
        function_arn="arn:fn",
        role_arn="arn:role",
        now=NOW,
    )
    assert scheduler.schedules["bot-ttl-expire"]["ScheduleExpression"] == "at(2026-11-30T12:00:00)"
    assert scheduler.schedules["bot-ttl-remind"]["ScheduleExpression"] == "at(2026-11-29T12:00:00)"
    target = json.loads(scheduler.schedules["bot-ttl-expire"]["Target"]["Input"])
    assert target["scheduledTime"] == "<aws.scheduler.scheduled-time>"
    assert ttl["expiresAt"] == (NOW + timedelta(hours=48)).isoformat()
    moved = lines.extend(scheduler, s3, BUCKET, "bot", hours=24, now=NOW)
    assert moved["to"] == (NOW + timedelta(hours=72)).isoformat()
    assert scheduler.schedules["bot-ttl-expire"]["ScheduleExpression"] == "at(2026-12-01T12:00:00)"
    assert scheduler.schedules["bot-ttl-remind"]["ScheduleExpression"] == "at(2026-11-30T12:00:00)"
    with pytest.raises(lines.LineError, match="positive number of hours"):
        lines.extend(scheduler, s3, BUCKET, "bot", hours=0)


def test_a_schedule_for_a_deadline_that_moved_does_nothing_and_the_due_one_deletes(
    s3: Any, bedrock: tuple[Any, Stubber]
) -> None:
    client, stubber = bedrock
    scheduler = FakeScheduler()
    serve(s3, 1)
    lines.set_time_to_live(
        scheduler, s3, BUCKET, "bot", expires_at=NOW + timedelta(hours=48), reminder_hours=24,
        group="g", function_arn="f", role_arn="r", now=NOW,
    )  # fmt: skip
    lines.extend(scheduler, s3, BUCKET, "bot", hours=24, now=NOW)
    event = {"action": "expire", "bucket": BUCKET, "line": "bot", "endpointArn": PT}
    # The deletion scheduled before the extension fires: stale, nothing deleted (no Bedrock call stubbed)
    stale = lines.on_schedule(client, s3, {**event, "scheduledTime": "2026-11-30T12:00:00Z"})
    assert stale["done"].startswith("nothing: the expire moved to")
    # The current one fires: the throughput is deleted and the record says so
    stubber.add_response(
        "get_provisioned_model_throughput",
        {
            "modelUnits": 1, "desiredModelUnits": 1, "provisionedModelName": "line-bot-pt",
            "provisionedModelArn": PT, "modelArn": PT.replace("provisioned", "custom"),
            "desiredModelArn": PT.replace("provisioned", "custom"),
            "foundationModelArn": "arn:aws:bedrock:us-west-2::foundation-model/x", "status": "InService",
            "creationTime": NOW, "lastModifiedTime": NOW,
        },
    )  # fmt: skip
    stubber.add_response("delete_provisioned_model_throughput", {}, {"provisionedModelId": PT})
    done = lines.on_schedule(client, s3, {**event, "scheduledTime": "2026-12-01T12:00:00Z"})
    assert done["done"] == "deleted"
    assert "nothing of line bot is billing by the hour now" in done["notice"]["body"]
    record = lines.read_record(s3, BUCKET, "bot")
    assert record is not None and record["endpoint"]["deletedAt"] and record["served"] is None


class FakeStepFunctions:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, **params: Any) -> None:
        from botocore.exceptions import ClientError

        self.calls.append((name, params))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, name)

    def send_task_success(self, **params: Any) -> None:
        self._call("SendTaskSuccess", **params)

    def send_task_failure(self, **params: Any) -> None:
        self._call("SendTaskFailure", **params)


def _request(s3: Any) -> None:
    from bedrock_finetune.reports import write_json

    write_json(
        s3,
        BUCKET,
        "reports/bot/approval.json",
        {"status": "waiting", "taskToken": "token-1", "executionArn": "arn:exec/1", "what": "create pt"},
    )


def test_approve_sends_the_token_once_and_records_who(s3: Any) -> None:
    _request(s3)
    sfn = FakeStepFunctions()
    answered = approvals.answer(sfn, s3, BUCKET, "bot", approve=True, by="arn:aws:iam::1:user/ana", now=NOW)
    ((name, params),) = sfn.calls
    assert (name, params["taskToken"]) == ("SendTaskSuccess", "token-1")
    assert json.loads(params["output"])["by"] == "arn:aws:iam::1:user/ana"
    assert (answered["status"], answered["answeredBy"]) == ("approved", "arn:aws:iam::1:user/ana")
    stored = approvals.read_request(s3, BUCKET, "bot")
    assert stored is not None and "taskToken" not in stored  # an answered token is not kept
    with pytest.raises(approvals.ApprovalError, match=r"no approval request waiting \(status: approved\)"):
        approvals.answer(sfn, s3, BUCKET, "bot", approve=True, by="someone")


def test_reject_sends_the_error_the_state_machine_catches(s3: Any) -> None:
    _request(s3)
    sfn = FakeStepFunctions()
    approvals.answer(sfn, s3, BUCKET, "bot", approve=False, by="ana", reason="over budget")
    ((name, params),) = sfn.calls
    assert (name, params["error"], params["cause"]) == (
        "SendTaskFailure",
        "ApprovalRejected",
        "Rejected by ana: over budget",
    )


def test_an_expired_request_cannot_be_answered_and_says_nothing_was_bought(s3: Any) -> None:
    _request(s3)
    with pytest.raises(approvals.ApprovalError, match="nothing was bought"):
        approvals.answer(FakeStepFunctions("TaskTimedOut"), s3, BUCKET, "bot", approve=True, by="ana")
    stored = approvals.read_request(s3, BUCKET, "bot")
    assert stored is not None and stored["status"] == "expired"


def test_the_inventory_counts_what_lines_serve_past_their_ttl_and_approvals_left_waiting(s3: Any) -> None:
    # Given a line served with a time to live that has passed, a line whose endpoint was deleted, and
    # an approval request asked two days ago
    from bedrock_finetune.reports import write_json

    serve(s3, 1)
    record = lines.read_record(s3, BUCKET, "bot")
    assert record is not None
    record["endpoint"]["ttl"] = {"expiresAt": (NOW - timedelta(hours=1)).isoformat()}
    write_json(s3, BUCKET, "reports/bot/line.json", record)
    write_json(
        s3, BUCKET, "reports/gone/line.json", {"line": "gone", "endpoint": {"arn": PT, "deletedAt": "x"}}
    )
    write_json(
        s3,
        BUCKET,
        "reports/asks/approval.json",
        {"status": "waiting", "requestedAt": (NOW - timedelta(days=2)).isoformat()},
    )
    # When the inventory runs, pricing a throughput at 20 USD per hour
    inventory = lines.serving_inventory(s3, BUCKET, hourly_cost=lambda endpoint: 20.0, now=NOW)
    # Then it counts one endpoint in service, past its TTL, one approval waiting over a day, 20 USD/hour
    assert inventory["endpointsInService"] == inventory["endpointsPastTtl"] == 1
    assert inventory["approvalsWaitingOverADay"] == 1
    assert inventory["endpointHourlyCostEstimate"] == 20.0
    assert inventory["lines"]["pastTtl"] == ["bot"] and inventory["lines"]["approvalsWaiting"] == ["asks"]


@pytest.mark.parametrize(("expired", "status"), [("false", "waiting"), ("true", "expired")])
def test_a_kept_version_closes_its_request_only_when_the_approval_expired(
    s3: Any, expired: str, status: str
) -> None:
    from bedrock_finetune.settings import LineSettings

    # Given this execution's approval request is still waiting
    _request(s3)
    settings = LineSettings(bucket_name=BUCKET, stack_name="S", region="us-west-2", topic_arn="arn:topic")
    task = {
        "job": job(1),
        "mode": "provisioned",
        "served": False,
        "why": "kept for a reason",
        "executionArn": "arn:exec/1",
        # as the state machine passes it: a string from a Pass state's parameters
        "approvalExpired": expired,
    }
    # When the version is recorded as kept
    lines.record_line_version(s3, None, run("v1"), task=task, settings=settings, now=NOW)
    # Then the request is marked expired only when the approval expired ("false" is not true)
    stored = approvals.read_request(s3, BUCKET, "bot")
    assert stored is not None and stored["status"] == status
