"""Serving a line: the plan (create, update or nothing; approval), idempotent create and update of
the line's one endpoint, and its status, against Bedrock's API shapes (botocore Stubber)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.serving import (
    EndpointBusy,
    endpoint_status,
    plan_serving,
    serve_model,
    wait_for_deployment_quota,
)
from bedrock_finetune.settings import ServeModelSettings, ServingSettings

BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
NOVA = "amazon.nova-lite-v1:0:300k"
NEW_MODEL = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/newmodel0001"
OLD_MODEL = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/oldmodel0001"
LATER_MODEL = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{BASE}/latermodel01"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abcdefghijkl"
DEPLOYMENT_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/abcdefghijkl"
EXECUTION = "arn:aws:states:us-west-2:123456789012:execution:sm:run-1"
RUN = RunRef(bucket="data-bucket", key="datasets/support-bot/train.jsonl", run="support-bot", version_id="v2")
JOB = {"jobArn": "arn:job", "outputModelArn": NEW_MODEL}


def settings(mode: str = "provisioned", approval: str = "provisioned", **extra: Any) -> ServingSettings:
    return ServingSettings(
        base_model_id=NOVA if mode == "on_demand" else BASE,
        mode=mode,
        approval=approval,
        model_units=1,
        commitment=extra.pop("commitment", None),
        stack_tag="arn:aws:cloudformation:us-west-2:123456789012:stack/S/1",
        **extra,
    )


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "bedrock", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _pt(status: str = "InService", model: str = OLD_MODEL, desired: str | None = None) -> dict[str, Any]:
    return {
        "modelUnits": 1,
        "desiredModelUnits": 1,
        "provisionedModelName": RUN.line.throughput_name,
        "provisionedModelArn": PT_ARN,
        "modelArn": model,
        "desiredModelArn": desired or model,
        "foundationModelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{BASE}",
        "status": status,
        "creationTime": "2026-11-22T00:00:00Z",
        "lastModifiedTime": "2026-11-22T00:00:00Z",
    }


def _deployment(
    status: str = "Active", model: str = OLD_MODEL, update: str | None = None, update_model: str = NEW_MODEL
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "customModelDeploymentArn": DEPLOYMENT_ARN,
        "modelDeploymentName": RUN.line.deployment_name,
        "modelArn": model,
        "createdAt": "2026-11-22T00:00:00Z",
        "status": status,
    }
    if update:
        response["updateDetails"] = {"modelArn": update_model, "updateStatus": update}
    return response


def _no_throughput(stubber: Stubber) -> None:
    stubber.add_client_error(
        "get_provisioned_model_throughput",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={"provisionedModelId": RUN.line.throughput_name},
    )


# ---- plan ----


def test_a_first_version_creates_the_line_endpoint_and_buying_throughput_waits_for_approval(
    stubbed: tuple[Any, Stubber],
) -> None:
    # Given a line with no throughput yet
    client, stubber = stubbed
    _no_throughput(stubber)
    # When serving is planned with the default approval policy
    plan = plan_serving(client, RUN, JOB, settings())
    # Then the throughput is to be created, after an approval, with a labelled estimate
    assert plan["action"] == "create"
    assert plan["endpointName"] == RUN.line.throughput_name
    assert plan["endpointArn"] is None
    assert plan["approvalNeeded"] is True
    assert plan["estimate"]["what"] == "Provisioned Throughput, 1 model unit(s), no commitment"
    assert "estimate" in plan["estimate"]["perHour"]["text"].lower()


def test_a_later_version_updates_the_same_throughput_without_asking_again(
    stubbed: tuple[Any, Stubber],
) -> None:
    # Given the line's throughput serving an older model
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt(model=OLD_MODEL))
    # When the next version is planned
    plan = plan_serving(client, RUN, JOB, settings())
    # Then it replaces the model behind the same ARN; swapping buys nothing, so no approval
    assert (plan["action"], plan["endpointArn"], plan["previousModelArn"]) == ("update", PT_ARN, OLD_MODEL)
    assert plan["approvalNeeded"] is False


@pytest.mark.parametrize(
    ("approval", "mode", "exists", "needed"),
    [
        ("always", "provisioned", True, True),
        ("always", "on_demand", False, True),
        ("never", "provisioned", False, False),
        ("provisioned", "on_demand", False, False),
    ],
)
def test_the_approval_policy_decides_what_waits_for_a_person(
    stubbed: tuple[Any, Stubber], approval: str, mode: str, exists: bool, needed: bool
) -> None:
    client, stubber = stubbed
    operation = "get_provisioned_model_throughput" if mode == "provisioned" else "get_custom_model_deployment"
    if exists:
        stubber.add_response(operation, _pt() if mode == "provisioned" else _deployment())
    else:
        stubber.add_client_error(operation, "ResourceNotFoundException", http_status_code=404)
    assert plan_serving(client, RUN, JOB, settings(mode, approval))["approvalNeeded"] is needed


def test_a_retry_after_the_model_is_already_served_plans_nothing(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt(model=NEW_MODEL))
    plan = plan_serving(client, RUN, JOB, settings(approval="always"))
    assert (plan["action"], plan["approvalNeeded"], plan["previousModelArn"]) == ("none", False, None)


# ---- serve ----


def _plan(mode: str = "provisioned") -> dict[str, Any]:
    name = RUN.line.throughput_name if mode == "provisioned" else RUN.line.deployment_name
    return {
        "mode": mode,
        "kind": "x",
        "line": "support-bot",
        "endpointName": name,
        "modelArn": NEW_MODEL,
        "deadline": "2030-01-01T00:00:00+00:00",
    }


def test_serve_creates_the_throughput_with_a_deterministic_token_and_the_stack_tag(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    _no_throughput(stubber)
    stubber.add_response(
        "create_provisioned_model_throughput",
        {"provisionedModelArn": PT_ARN},
        expected_params={
            "modelUnits": 1,
            "provisionedModelName": RUN.line.throughput_name,
            "modelId": NEW_MODEL,
            "clientRequestToken": ANY,
            "commitmentDuration": "OneMonth",
            "tags": ANY,
        },
    )
    result = serve_model(client, RUN, _plan(), EXECUTION, settings(commitment="OneMonth"))
    assert (result["endpointArn"], result["done"]) == (PT_ARN, "created")
    # And the endpoint's loop first waits a minute (Wait for endpoint reads it)
    assert result["waitSeconds"] == 60


def test_serve_puts_the_new_model_behind_the_existing_throughput(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt(model=OLD_MODEL))
    stubber.add_response(
        "update_provisioned_model_throughput",
        {},
        expected_params={"provisionedModelId": PT_ARN, "desiredModelId": NEW_MODEL},
    )
    result = serve_model(client, RUN, _plan(), EXECUTION, settings())
    assert (result["done"], result["previousModelArn"]) == ("updated", OLD_MODEL)


def test_serve_creates_an_on_demand_deployment_for_a_new_nova_line(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_client_error("get_custom_model_deployment", "ResourceNotFoundException", http_status_code=404)
    stubber.add_response(
        "create_custom_model_deployment",
        {"customModelDeploymentArn": DEPLOYMENT_ARN},
        expected_params={
            "modelDeploymentName": RUN.line.deployment_name,
            "modelArn": NEW_MODEL,
            "description": ANY,
            "clientRequestToken": ANY,
            "tags": ANY,
        },
    )
    result = serve_model(client, RUN, _plan("on_demand"), EXECUTION, settings("on_demand"))
    assert (result["endpointArn"], result["done"]) == (DEPLOYMENT_ARN, "created")


def test_a_busy_endpoint_is_retried_not_failed(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt("Updating", model=OLD_MODEL))
    with pytest.raises(EndpointBusy):
        serve_model(client, RUN, _plan(), EXECUTION, settings())


def test_no_model_units_is_a_quota_error_not_a_retry(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    _no_throughput(stubber)
    stubber.add_client_error(
        "create_provisioned_model_throughput", "ServiceQuotaExceededException", http_status_code=400
    )
    _no_throughput(stubber)
    with pytest.raises(BedrockQuotaExceeded):
        serve_model(client, RUN, _plan(), EXECUTION, settings())


def test_the_tokens_differ_per_upload_but_not_per_retry() -> None:
    from bedrock_finetune.naming import serving_token

    other = RunRef(bucket=RUN.bucket, key=RUN.key, run=RUN.run, version_id="v3")
    name = RUN.line.throughput_name
    assert serving_token(name, RUN.identity) == serving_token(name, RUN.identity)
    assert serving_token(name, RUN.identity) != serving_token(name, other.identity)
    assert other.line == RUN.line  # every version of a line shares its endpoint names


# ---- status ----


@pytest.mark.parametrize(
    ("described", "state"),
    [
        (_pt("InService", model=NEW_MODEL), "ready"),
        (_pt("Updating", model=OLD_MODEL, desired=NEW_MODEL), "waiting"),
        (_pt("InService", model=OLD_MODEL), "waiting"),
        ({**_pt("Failed", model=NEW_MODEL), "failureMessage": "capacity"}, "failed"),
        # a later version (or a rollback) asked for another model since this run's update
        (_pt("Updating", model=OLD_MODEL, desired=LATER_MODEL), "superseded"),
        (_pt("Updating", model=NEW_MODEL, desired=LATER_MODEL), "superseded"),
        (_pt("InService", model=LATER_MODEL), "superseded"),
    ],
)
def test_a_throughput_is_ready_only_when_it_serves_the_new_model(
    stubbed: tuple[Any, Stubber], described: dict[str, Any], state: str
) -> None:
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", described)
    # (this run put its model behind the line's throughput, which served OLD_MODEL)
    endpoint = {**_plan(), "endpointArn": PT_ARN, "previousModelArn": OLD_MODEL}
    assert endpoint_status(client, endpoint, poll_cap_seconds=300)["state"] == state


@pytest.mark.parametrize(
    ("described", "state"),
    [
        (_deployment("Active", model=NEW_MODEL), "ready"),
        (_deployment("Active", model=OLD_MODEL, update="Updating"), "waiting"),
        (_deployment("Active", model=NEW_MODEL, update="UpdateCompleted"), "ready"),
        (_deployment("Active", model=OLD_MODEL, update="UpdateFailed"), "failed"),
        (_deployment("Failed", model=NEW_MODEL), "failed"),
        (_deployment("Active", model=NEW_MODEL, update="Updating", update_model=LATER_MODEL), "superseded"),
        (
            _deployment("Active", model=LATER_MODEL, update="UpdateCompleted", update_model=LATER_MODEL),
            "superseded",
        ),
    ],
)
def test_a_deployment_is_ready_when_active_with_its_update_completed(
    stubbed: tuple[Any, Stubber], described: dict[str, Any], state: str
) -> None:
    client, stubber = stubbed
    stubber.add_response("get_custom_model_deployment", described)
    endpoint = {**_plan("on_demand"), "endpointArn": DEPLOYMENT_ARN, "previousModelArn": OLD_MODEL}
    assert endpoint_status(client, endpoint, poll_cap_seconds=300)["state"] == state


def test_a_throughput_this_run_created_that_is_given_a_later_model_supersedes_the_run(
    stubbed: tuple[Any, Stubber],
) -> None:
    # Given this run created the line's throughput for its model (nothing served before), and a later
    # version of the line asked for its own model before this run saw the throughput in service
    client, stubber = stubbed
    stubber.add_response(
        "get_provisioned_model_throughput", _pt("Updating", model=NEW_MODEL, desired=LATER_MODEL)
    )
    endpoint = {**_plan(), "endpointArn": PT_ARN, "previousModelArn": None}
    # When its status is read
    status = endpoint_status(client, endpoint, poll_cap_seconds=300)
    # Then this run stops waiting for a model that will not be served, and says why
    assert status["state"] == "superseded"
    assert LATER_MODEL in status["failureMessage"] and "kept, not served" in status["failureMessage"]


def test_an_endpoint_not_ready_by_its_deadline_fails_the_wait(stubbed: tuple[Any, Stubber]) -> None:
    # Given a throughput still Creating after endpoint_wait_hours
    client, stubber = stubbed
    stubber.add_response("get_provisioned_model_throughput", _pt("Creating", model=NEW_MODEL))
    now = datetime(2030, 1, 1, 1, tzinfo=UTC)
    endpoint = {**_plan(), "endpointArn": PT_ARN, "deadline": (now - timedelta(minutes=1)).isoformat()}
    # When its status is read
    status = endpoint_status(client, endpoint, poll_cap_seconds=300, now=now)
    # Then the loop ends: the endpoint failed, and the message says why
    assert status["state"] == "failed"
    assert "was still Creating" in status["failureMessage"]


def test_each_look_at_an_endpoint_says_how_long_to_wait_before_the_next_growing_to_the_cap(
    stubbed: tuple[Any, Stubber],
) -> None:
    # Given a throughput that stays Creating, looked at again and again (each look's output is the
    # next look's input, as the state machine passes $.endpoint)
    client, stubber = stubbed
    endpoint: dict[str, Any] = {**_plan(), "endpointArn": PT_ARN}
    waits = []
    for _ in range(5):
        stubber.add_response("get_provisioned_model_throughput", _pt("Creating", model=NEW_MODEL))
        endpoint = endpoint_status(client, endpoint, poll_cap_seconds=300)
        waits.append(endpoint["waitSeconds"])
    # Then the waits after the first minute (Serve model's) double up to throughput_poll_seconds
    assert waits == [120, 240, 300, 300, 300]
    assert endpoint["polls"] == 5


# ---- the deployment quota ----


class _Topic:
    """An SNS client that keeps what is published."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **message: Any) -> dict[str, str]:
        self.published.append(message)
        return {"MessageId": str(len(self.published))}


def _serve_model_settings(policy: str = "wait", max_wait_seconds: int = 3600) -> ServeModelSettings:
    base = settings("on_demand")
    return ServeModelSettings(
        **{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
        policy=policy,
        max_wait_seconds=max_wait_seconds,
        cap_seconds=600,
        topic_arn="arn:aws:sns:us-east-1:123456789012:runs",
    )


ON_DEMAND_PLAN = {"mode": "on_demand", "endpointName": "support-bot", "modelArn": NEW_MODEL}
REFUSAL = {
    "Error": "BedrockQuotaExceeded",
    # A Lambda error's cause is JSON
    "Cause": json.dumps(
        {"errorMessage": "CreateCustomModelDeployment: ServiceQuotaExceededException: too many deployments."}
    ),
}


def test_a_refused_deployment_waits_with_back_off_and_tells_its_people_once() -> None:
    # Given Bedrock refused the line's deployment for a quota, under deployment_quota_policy = wait
    topic, config = _Topic(), _serve_model_settings()
    # When the refusal is handled, twice in a row
    first = wait_for_deployment_quota(
        topic, RUN, plan=ON_DEMAND_PLAN, quota={"refusal": REFUSAL}, execution_arn=EXECUTION, settings=config
    )
    second = wait_for_deployment_quota(
        topic, RUN, plan=ON_DEMAND_PLAN, quota={**first, "refusal": REFUSAL}, execution_arn=EXECUTION,
        settings=config,
    )  # fmt: skip
    # Then it waits 2, then 4 minutes, and one notice says why and until when
    assert (first["waitSeconds"], first["attempt"], first["firstWait"]) == (120, 0, True)
    assert (second["waitSeconds"], second["waitedSeconds"], second["firstWait"]) == (240, 120, False)
    [notice] = topic.published
    assert notice["Subject"] == "[fine-tuning] support-bot: Bedrock's deployment quota is full, waiting"
    assert "ServiceQuotaExceededException: too many deployments." in notice["Message"]
    assert "after 1 h of waiting (max_deployment_wait_hours)" in notice["Message"]
    assert notice["MessageAttributes"]["outcome"]["StringValue"] == "waiting"


def test_a_deployment_quota_wait_gives_up_after_its_maximum_keeping_the_model() -> None:
    topic = _Topic()
    previous = {"attempt": 7, "waitedSeconds": 3000, "waitSeconds": 600, "refusal": REFUSAL}
    with pytest.raises(
        QuotaWaitExpired, match=r"waited 1 h for a quota and gave up .*nothing was bought"
    ) as err:
        wait_for_deployment_quota(
            topic, RUN, plan=ON_DEMAND_PLAN, quota=previous, execution_arn=EXECUTION,
            settings=_serve_model_settings(),
        )  # fmt: skip
    assert f"The custom model is kept: {NEW_MODEL}" in str(err.value)
    assert "max_deployment_wait_hours" in str(err.value)
    assert topic.published == []


@pytest.mark.parametrize(
    ("plan", "policy"),
    [({**ON_DEMAND_PLAN, "mode": "provisioned"}, "wait"), (ON_DEMAND_PLAN, "fail")],
    ids=["model units of a throughput", "policy fail"],
)
def test_model_units_and_the_fail_policy_fail_at_once(plan: dict[str, Any], policy: str) -> None:
    topic = _Topic()
    with pytest.raises(BedrockQuotaExceeded, match="too many deployments"):
        wait_for_deployment_quota(
            topic, RUN, plan=plan, quota={"refusal": REFUSAL}, execution_arn=EXECUTION,
            settings=_serve_model_settings(policy),
        )  # fmt: skip
    assert topic.published == []
