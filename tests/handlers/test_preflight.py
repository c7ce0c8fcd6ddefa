"""Preflight custom resource: Create/Update/Delete events as the Provider framework sends them.

moto has neither GetFoundationModel nor ListServiceQuotas: a Stubber answers both (validating the
request and the response against the botocore model); moto serves SNS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU
from bedrock_finetune.preflight import NO_COMMITMENT_QUOTA_NAME, PreflightFailed
from tests.conftest import FakeLambdaContext, subscribed_inbox

MODEL_ARN = f"arn:aws:bedrock:us-west-2::foundation-model/{CLAUDE_3_HAIKU}"
NOW = datetime.now(UTC)


def model_details(
    *,
    customizations: tuple[str, ...] = ("FINE_TUNING",),
    status: str = "ACTIVE",
    end_of_life: datetime | None = None,
) -> dict[str, Any]:
    lifecycle: dict[str, Any] = {"status": status}
    if end_of_life is not None:
        lifecycle["endOfLifeTime"] = end_of_life
    return {
        "modelDetails": {
            "modelArn": MODEL_ARN,
            "modelId": CLAUDE_3_HAIKU,
            "modelName": "Claude 3 Haiku",
            "providerName": "Anthropic",
            "customizationsSupported": list(customizations),
            "inferenceTypesSupported": ["PROVISIONED"],
            "modelLifecycle": lifecycle,
        }
    }


def quota(
    name: str = NO_COMMITMENT_QUOTA_NAME, value: float = 2.0, code: str = "L-BE77399C"
) -> dict[str, Any]:
    return {
        "ServiceCode": "bedrock",
        "QuotaName": name,
        "QuotaCode": code,
        "Value": value,
        "Adjustable": True,
    }


class Clients:
    """Stubbed bedrock and service-quotas clients; every expected call must happen."""

    def __init__(self) -> None:
        self.bedrock = boto3.client("bedrock", region_name="us-west-2")
        self.quotas = boto3.client("service-quotas", region_name="us-west-2")
        self.bedrock_stub = Stubber(self.bedrock)
        self.quotas_stub = Stubber(self.quotas)
        self.bedrock_stub.activate()
        self.quotas_stub.activate()

    def model(self, response: dict[str, Any]) -> None:
        self.bedrock_stub.add_response("get_foundation_model", response, {"modelIdentifier": CLAUDE_3_HAIKU})

    def model_error(self, code: str, message: str) -> None:
        self.bedrock_stub.add_client_error("get_foundation_model", code, message, 404)

    def applied_quotas(self, *pages: list[dict[str, Any]]) -> None:
        for i, page in enumerate(pages):
            response: dict[str, Any] = {"Quotas": page}
            expected: dict[str, Any] = {"ServiceCode": "bedrock", "MaxResults": 100}
            if i + 1 < len(pages):
                response["NextToken"] = f"page-{i + 1}"
            if i:
                expected["NextToken"] = f"page-{i}"
            self.quotas_stub.add_response("list_service_quotas", response, expected)

    def default_quotas(self, page: list[dict[str, Any]]) -> None:
        self.quotas_stub.add_response(
            "list_aws_default_service_quotas", {"Quotas": page}, {"ServiceCode": "bedrock", "MaxResults": 100}
        )

    def quotas_error(self, code: str) -> None:
        self.quotas_stub.add_client_error("list_service_quotas", code, "not allowed", 400)

    def assert_all_used(self) -> None:
        self.bedrock_stub.assert_no_pending_responses()
        self.quotas_stub.assert_no_pending_responses()


@pytest.fixture
def world(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    topic_arn, queue_url = subscribed_inbox()
    clients = Clients()
    factories = {
        "bedrock": lambda: clients.bedrock,
        "service-quotas": lambda: clients.quotas,
        "sns": lambda: boto3.client("sns", region_name="us-west-2"),
    }
    import handlers.preflight

    monkeypatch.setattr(handlers.preflight, "client", lambda name: factories[name]())
    return {"clients": clients, "topic_arn": topic_arn, "queue_url": queue_url}


def _event(world: dict[str, Any], request: str, **properties: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:us-west-2:123456789012:function:framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-uswest2.s3.amazonaws.com/x",
        "StackId": "arn:aws:cloudformation:us-west-2:123456789012:stack/BedrockFineTuning/1111",
        "RequestId": "req-1",
        "LogicalResourceId": "GuardsPreflight6E1F85B7",
        "ResourceType": "Custom::BedrockPreflight",
        "ResourceProperties": {
            "BaseModelId": CLAUDE_3_HAIKU,
            "Region": "us-west-2",
            "ModelSpec": json.dumps(BUILTIN_MODELS[CLAUDE_3_HAIKU].to_dict()),
            "Hyperparameters": json.dumps({"epochCount": 3}),
            "ModelUnits": "1",
            "Commitment": "",
            "TopicArn": world["topic_arn"],
            "StackName": "BedrockFineTuning",
            **properties,
        },
    }
    if request != "Create":
        event["PhysicalResourceId"] = "GuardsPreflight6E1F85B7-preflight"
    return event


def _run(event: dict[str, Any]) -> dict[str, Any]:
    from handlers.preflight import handler

    return handler(event, FakeLambdaContext())


def _published(world: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-west-2")
    messages = sqs.receive_message(QueueUrl=world["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_create_passes_quietly_when_the_model_is_active_and_units_are_available(
    world: dict[str, Any],
) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota("Some other quota", 5)], [quota(value=2)])
    clients.default_quotas([])  # no quota on concurrent customization jobs is listed

    result = _run(_event(world, "Create"))

    assert result["PhysicalResourceId"] == "GuardsPreflight6E1F85B7-preflight"
    assert result["Data"]["Warnings"] == "none"
    assert result["Data"]["ModelLifecycle"] == "ACTIVE"
    assert result["Data"]["Quota"] == f"{NO_COMMITMENT_QUOTA_NAME} (L-BE77399C) = 2"
    assert _published(world) == []
    clients.assert_all_used()


def test_model_not_customizable_in_the_region_fails_the_deploy(world: dict[str, Any]) -> None:
    world["clients"].model(model_details(customizations=()))

    with pytest.raises(PreflightFailed) as failure:
        _run(_event(world, "Create"))

    assert str(failure.value).startswith(
        f"Base model {CLAUDE_3_HAIKU} cannot be fine-tuned in us-west-2: Bedrock lists its customizations "
        "as [none], without FINE_TUNING."
    )


def test_model_not_offered_in_the_region_fails_with_where_it_is(world: dict[str, Any]) -> None:
    world["clients"].model_error("ResourceNotFoundException", "The model does not exist")

    with pytest.raises(PreflightFailed) as failure:
        _run(_event(world, "Update", Region="us-east-1"))

    message = str(failure.value)
    assert f"Base model {CLAUDE_3_HAIKU} is not offered by Amazon Bedrock in us-east-1" in message
    assert "fine-tuning is documented in us-west-2" in message


def test_model_past_end_of_life_fails_the_deploy(world: dict[str, Any]) -> None:
    eol = NOW - timedelta(days=30)
    world["clients"].model(model_details(status="LEGACY", end_of_life=eol))

    with pytest.raises(PreflightFailed) as failure:
        _run(_event(world, "Create"))

    assert f"reached its end of life in us-west-2 on {eol:%Y-%m-%d}" in str(failure.value)


def test_legacy_model_warns_in_the_output_and_on_the_topic(world: dict[str, Any]) -> None:
    clients = world["clients"]
    eol = NOW + timedelta(days=60)
    clients.model(model_details(status="LEGACY", end_of_life=eol))
    clients.applied_quotas([quota(value=1)])
    clients.default_quotas([])

    result = _run(_event(world, "Create"))

    warning = result["Data"]["Warnings"]
    assert warning.startswith(
        f"Base model {CLAUDE_3_HAIKU} is LEGACY in us-west-2 (end of life {eol:%Y-%m-%d})"
    )
    [notice] = _published(world)
    assert notice["Subject"] == "[fine-tuning] deploy of BedrockFineTuning: preflight warnings"
    assert warning in notice["Message"]


def test_zero_model_units_warns_without_failing(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota(value=0)])
    clients.default_quotas([])

    result = _run(_event(world, "Create"))

    assert "Your account has no model units for Provisioned Throughput" in result["Data"]["Warnings"]
    assert len(_published(world)) == 1


def test_quota_missing_from_applied_values_falls_back_to_the_aws_default(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([])
    clients.default_quotas([quota(value=0)])

    result = _run(_event(world, "Create"))

    assert result["Data"]["Quota"].endswith("= 0")
    assert "no model units" in result["Data"]["Warnings"]
    clients.assert_all_used()


def test_quota_not_readable_is_a_warning_not_a_failure(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.quotas_error("AccessDeniedException")

    result = _run(_event(world, "Create"))

    assert result["Data"]["Quota"] == "not checked"
    assert result["Data"]["Warnings"].startswith(
        "Could not read the Bedrock model-units quota (AccessDeniedException)"
    )


def test_commitment_quota_is_found_by_the_models_name(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas(
        [
            quota(value=5),
            quota("Model units per provisioned model for Claude 3 Haiku", 0, "L-COMMIT"),
            quota("Model units per provisioned model for Claude 3 Haiku 48K", 9, "L-OTHER"),
        ]
    )
    clients.default_quotas([])

    result = _run(_event(world, "Create", Commitment="OneMonth", ModelUnits="2"))

    assert result["Data"]["Quota"] == "Model units per provisioned model for Claude 3 Haiku (L-COMMIT) = 0"


def test_bad_hyperparameter_defaults_fail_before_any_call(world: dict[str, Any]) -> None:
    with pytest.raises(PreflightFailed) as failure:
        _run(_event(world, "Create", Hyperparameters=json.dumps({"epochCount": 50})))

    assert "epochCount = 50 is out of range" in str(failure.value)
    world["clients"].assert_all_used()


def test_update_checks_again_and_delete_calls_nothing(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota(value=1)])
    clients.default_quotas([])

    assert _run(_event(world, "Update", ModelUnits="1"))["Data"]["Warnings"] == "none"
    clients.assert_all_used()
    # No responses queued: any Bedrock or Service Quotas call on Delete would raise.
    assert _run(_event(world, "Delete")) == {"PhysicalResourceId": "GuardsPreflight6E1F85B7-preflight"}


# ---- the training queue's limit: the account's quota on concurrent customization jobs ----

JOBS_QUOTA = "Concurrent model customization jobs"


def test_the_queue_limit_is_the_accounts_quota_on_concurrent_jobs(world: dict[str, Any]) -> None:
    # Given the account's quota on concurrent customization jobs is 3, and nothing is configured
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota(value=1), quota(JOBS_QUOTA, 3, "L-JOBS")])

    # When the preflight runs at deploy time
    result = _run(_event(world, "Create"))

    # Then the training queue's limit (an attribute its function reads) is the quota, quietly
    assert result["Data"]["MaxConcurrentJobs"] == "3"
    assert result["Data"]["JobsQuota"] == f"{JOBS_QUOTA} (L-JOBS) = 3"
    assert result["Data"]["Warnings"] == "none"
    clients.assert_all_used()


def test_a_configured_limit_above_the_quota_is_lowered_to_it_with_a_warning(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota(value=1)])
    clients.default_quotas([quota(JOBS_QUOTA, 2, "L-JOBS")])  # never raised: only the default is listed

    result = _run(_event(world, "Create", MaxConcurrentJobs="5"))

    assert result["Data"]["MaxConcurrentJobs"] == "2"
    assert result["Data"]["Warnings"] == (
        f"max_concurrent_jobs = 5 is above the account's quota ({JOBS_QUOTA} (L-JOBS) = 2); the training "
        "queue lets 2 run at once."
    )
    clients.assert_all_used()


def test_a_configured_limit_below_the_quota_is_kept(world: dict[str, Any]) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.applied_quotas([quota(value=1), quota(JOBS_QUOTA, 4, "L-JOBS")])

    result = _run(_event(world, "Update", MaxConcurrentJobs="1"))

    assert (result["Data"]["MaxConcurrentJobs"], result["Data"]["Warnings"]) == ("1", "none")


@pytest.mark.parametrize(("configured", "limit"), [("", "2"), ("4", "4")])
def test_without_a_listed_quota_the_configured_limit_or_the_default_applies(
    world: dict[str, Any], configured: str, limit: str
) -> None:
    clients = world["clients"]
    clients.model(model_details())
    clients.quotas_error("AccessDeniedException")  # neither quota can be read

    result = _run(_event(world, "Create", MaxConcurrentJobs=configured))

    assert result["Data"]["MaxConcurrentJobs"] == limit
    assert result["Data"]["JobsQuota"] == "not checked"
