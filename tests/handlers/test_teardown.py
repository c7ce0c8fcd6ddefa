"""Teardown custom resource: Create/Update/Delete events as the Provider framework sends them.

moto serves customization jobs, custom models and their tags; ThroughputFake serves Provisioned
Throughput (which moto lacks); a Stubber answers CloudFormation's DescribeStacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune.lineage import TAG_STACK
from bedrock_finetune.teardown import TeardownFailed
from tests.conftest import FakeLambdaContext, subscribed_inbox
from tests.handlers.throughput_fake import ThroughputFake

STACK_ID = "arn:aws:cloudformation:us-west-2:123456789012:stack/BedrockFineTuning/1111-2222"
OTHER_STACK_ID = "arn:aws:cloudformation:us-west-2:123456789012:stack/OtherPipeline/3333-4444"
BASE_MODEL = "anthropic.claude-3-haiku-20240307-v1:0:200k"


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A topic with a queue subscribed, a moto bedrock client with the throughput fake, and a
    stack status that tests set; the handlers get these clients."""
    topic_arn, queue_url = subscribed_inbox()
    fake = ThroughputFake()
    bedrock = fake.attach(boto3.client("bedrock", region_name="us-west-2"))
    state: dict[str, Any] = {
        "topic_arn": topic_arn,
        "queue_url": queue_url,
        "fake": fake,
        "bedrock": bedrock,
        "stack_status": "DELETE_IN_PROGRESS",
        "describe_calls": 0,
    }

    def cloudformation() -> Any:
        cfn = boto3.client("cloudformation", region_name="us-west-2")
        stubber = Stubber(cfn)
        stubber.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackId": STACK_ID,
                        "StackName": "BedrockFineTuning",
                        "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
                        "StackStatus": state["stack_status"],
                    }
                ]
            },
            {"StackName": STACK_ID},
        )
        stubber.activate()
        state["describe_calls"] += 1
        return cfn

    factories: dict[str, Callable[[], Any]] = {
        "bedrock": lambda: bedrock,
        "cloudformation": cloudformation,
        "sns": lambda: boto3.client("sns", region_name="us-west-2"),
    }
    import handlers.teardown

    monkeypatch.setattr(handlers.teardown, "client", lambda name: factories[name]())
    return state


def _event(world: dict[str, Any], request: str, **extra: Any) -> dict[str, Any]:
    event = {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-uswest2.s3.amazonaws.com/x",
        "StackId": STACK_ID,
        "RequestId": "req-1",
        "LogicalResourceId": "GuardsTeardown56DD9B94",
        "ResourceType": "Custom::BedrockTeardown",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:framework-onEvent",
            "StackTag": STACK_ID,
            "Region": "us-west-2",
            "TopicArn": world["topic_arn"],
            "DeleteCustomModels": "false",
            "WaitSeconds": "1620",
        },
    }
    if request != "Create":
        event["PhysicalResourceId"] = "GuardsTeardown56DD9B94-teardown"
    event.update(extra)
    return event


def _on_event(event: dict[str, Any]) -> dict[str, Any]:
    from handlers.teardown import handler

    return handler(event, FakeLambdaContext())


def _is_complete(event: dict[str, Any], on_event_result: dict[str, Any]) -> dict[str, Any]:
    """What the framework sends isComplete: the request merged with onEvent's result."""
    from handlers.teardown import is_complete

    return is_complete({**event, **on_event_result}, FakeLambdaContext())


def _delete_until_complete(world: dict[str, Any], event: dict[str, Any], max_rounds: int = 5) -> int:
    result = _on_event(event)
    for round_number in range(1, max_rounds + 1):
        if _is_complete(event, result)["IsComplete"]:
            return round_number
    raise AssertionError(f"teardown not complete after {max_rounds} rounds")


def _published(world: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-west-2")
    messages = sqs.receive_message(QueueUrl=world["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def _start_job(bedrock: Any, name: str, stack_id: str) -> str:
    tags = [{"key": TAG_STACK, "value": stack_id}, {"key": "finetune:run", "value": name}]
    return str(
        bedrock.create_model_customization_job(
            jobName=name,
            customModelName=f"{name}-model",
            roleArn="arn:aws:iam::123456789012:role/service-role",
            baseModelIdentifier=BASE_MODEL,
            customizationType="FINE_TUNING",
            trainingDataConfig={"s3Uri": "s3://data/datasets/run/train.jsonl"},
            outputDataConfig={"s3Uri": "s3://data/outputs/run/"},
            hyperParameters={"epochCount": "2"},
            jobTags=tags,
            customModelTags=tags,
        )["jobArn"]
    )


def _job_status(bedrock: Any, name: str) -> str:
    return str(bedrock.get_model_customization_job(jobIdentifier=name)["status"])


def _custom_models(bedrock: Any) -> set[str]:
    return {m["modelName"] for m in bedrock.list_custom_models()["modelSummaries"]}


@pytest.fixture
def deployed(world: dict[str, Any]) -> dict[str, Any]:
    """Given what two stacks' runs left behind: jobs, custom models, throughput with and without a term."""
    bedrock, fake = world["bedrock"], world["fake"]
    _start_job(bedrock, "ft-ours-running", STACK_ID)
    _start_job(bedrock, "ft-theirs-running", OTHER_STACK_ID)
    ours = {TAG_STACK: STACK_ID}
    world["pts"] = {
        "ours_hourly": fake.add("ft-a-pt", tags=ours),
        "ours_creating": fake.add("ft-b-pt", tags=ours, status="Creating"),
        "ours_committed": fake.add(
            "ft-c-pt",
            tags=ours,
            commitment="SixMonths",
            expires=datetime(2027, 5, 1, tzinfo=UTC),
            model_arn="arn:aws:bedrock:us-west-2:123456789012:custom-model/ft-ours-running-model",
        ),
        "theirs": fake.add("ft-d-pt", tags={TAG_STACK: OTHER_STACK_ID}),
        "untagged": fake.add("by-hand-pt", tags={}),
    }
    return world


def test_create_and_update_tear_nothing_down(deployed: dict[str, Any]) -> None:
    for request in ("Create", "Update"):
        event = _event(deployed, request)
        result = _on_event(event)
        assert result["PhysicalResourceId"] == "GuardsTeardown56DD9B94-teardown"
        assert _is_complete(event, result) == {"IsComplete": True}
    assert deployed["fake"].calls == []
    assert _job_status(deployed["bedrock"], "ft-ours-running") == "InProgress"
    assert deployed["describe_calls"] == 0
    assert _published(deployed) == []


def test_delete_removes_this_stacks_hourly_throughput_and_reports_committed_one(
    deployed: dict[str, Any],
) -> None:
    pts, fake, bedrock = deployed["pts"], deployed["fake"], deployed["bedrock"]

    rounds = _delete_until_complete(deployed, _event(deployed, "Delete"))

    assert rounds == 2, "waits until Bedrock no longer lists the deleted throughput"
    assert set(fake.deletes()) == {pts["ours_hourly"], pts["ours_creating"]}
    assert set(fake.throughputs) == {pts["ours_committed"], pts["theirs"], pts["untagged"]}
    assert _job_status(bedrock, "ft-ours-running") == "Stopped"
    assert _job_status(bedrock, "ft-theirs-running") == "InProgress"
    assert _custom_models(bedrock) == {"ft-ours-running-model", "ft-theirs-running-model"}, "kept by default"
    [notice] = _published(deployed)
    assert notice["Subject"] == "[fine-tuning] BedrockFineTuning deleted: throughput still billing"
    body = notice["Message"]
    assert "SixMonths commitment" in body and "2027-05-01" in body
    assert f"--provisioned-model-id {pts['ours_committed']}" in body
    assert pts["ours_hourly"] in body and pts["theirs"] not in body and pts["untagged"] not in body


def test_second_delete_is_a_no_op(deployed: dict[str, Any]) -> None:
    _delete_until_complete(deployed, _event(deployed, "Delete"))
    _published(deployed)  # drain the first report
    deployed["fake"].calls.clear()

    rounds = _delete_until_complete(deployed, _event(deployed, "Delete"))

    assert rounds == 1
    assert deployed["fake"].deletes() == []
    # The committed throughput is still there and is reported again, nothing else happens.
    [notice] = _published(deployed)
    assert "stopped" not in notice["Message"].split("Teardown:")[1].split("\n")[0]
    assert deployed["pts"]["ours_committed"] in notice["Message"]


def test_delete_with_nothing_left_publishes_nothing(world: dict[str, Any]) -> None:
    rounds = _delete_until_complete(world, _event(world, "Delete"))
    assert rounds == 1
    assert _published(world) == []


def test_delete_during_an_update_replacement_tears_nothing_down(deployed: dict[str, Any]) -> None:
    deployed["stack_status"] = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
    event = _event(deployed, "Delete")

    result = _on_event(event)

    assert result["Data"] == {"Skipped": "true"}
    assert _is_complete(event, result) == {"IsComplete": True}
    assert deployed["fake"].deletes() == []
    assert _job_status(deployed["bedrock"], "ft-ours-running") == "InProgress"


def test_custom_models_deleted_only_when_configured_and_not_while_committed_throughput_serves_them(
    deployed: dict[str, Any],
) -> None:
    bedrock = deployed["bedrock"]
    _start_job(bedrock, "ft-ours-done", STACK_ID)
    event = _event(deployed, "Delete")
    event["ResourceProperties"]["DeleteCustomModels"] = "true"

    _delete_until_complete(deployed, event)

    assert _custom_models(bedrock) == {"ft-ours-running-model", "ft-theirs-running-model"}
    # ft-ours-running-model is served by the committed throughput; ft-ours-done-model is gone.


def test_throughput_already_gone_is_not_an_error(deployed: dict[str, Any]) -> None:
    fake, pts = deployed["fake"], deployed["pts"]
    fake.delete_errors[pts["ours_hourly"]] = "ResourceNotFoundException"
    fake.delete_errors[pts["ours_creating"]] = "ResourceNotFoundException"
    event = _event(deployed, "Delete")
    result = _on_event(event)
    # Bedrock said they are gone; they vanish from the listing too.
    del fake.throughputs[pts["ours_hourly"]], fake.throughputs[pts["ours_creating"]]
    assert _is_complete(event, result) == {"IsComplete": True}


def test_real_error_fails_with_what_to_delete_by_hand(deployed: dict[str, Any]) -> None:
    arn = deployed["pts"]["ours_hourly"]
    deployed["fake"].delete_errors[arn] = "AccessDeniedException"

    with pytest.raises(TeardownFailed) as failure:
        _on_event(_event(deployed, "Delete"))

    message = str(failure.value)
    assert "DeleteProvisionedModelThroughput failed (AccessDeniedException" in message
    assert f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {arn}" in message
    assert f"{TAG_STACK}={STACK_ID}" in message


def test_gives_up_before_the_framework_timeout_naming_what_is_left(deployed: dict[str, Any]) -> None:
    deployed["fake"].deletion_rounds = 1000  # Bedrock never finishes
    event = _event(deployed, "Delete")
    event["ResourceProperties"]["WaitSeconds"] = "0"
    result = _on_event(event)

    with pytest.raises(TeardownFailed) as failure:
        _is_complete(event, result)

    assert "Timed out waiting for Bedrock to delete" in str(failure.value)
    assert deployed["pts"]["ours_hourly"] in str(failure.value)
