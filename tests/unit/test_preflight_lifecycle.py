"""Preflight's lifecycle messages: the date, the reason and the one-line change to a model that
Bedrock fine-tunes, in a named Region."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU, NOVA_LITE
from bedrock_finetune.preflight import PreflightFailed, PreflightSettings, check_model, get_model_details

NOW = datetime(2026, 11, 28, tzinfo=UTC)
CHANGE = "-c base_model_id=amazon.nova-lite-v1:0:300k"


def settings(model_id: str = CLAUDE_3_HAIKU, region: str = "us-west-2") -> PreflightSettings:
    return PreflightSettings(model_id, region, BUILTIN_MODELS[model_id], {}, 1, None)


def details(status: str, end_of_life: datetime | None = None) -> dict:
    lifecycle: dict = {"status": status}
    if end_of_life:
        lifecycle["endOfLifeTime"] = end_of_life
    return {"customizationsSupported": ["FINE_TUNING"], "modelLifecycle": lifecycle}


def test_end_of_life_fails_with_the_date_and_the_one_line_change():
    with pytest.raises(PreflightFailed) as failure:
        check_model(details("LEGACY", datetime(2026, 9, 10, tzinfo=UTC)), settings(), NOW)
    message = str(failure.value)
    assert "reached its end of life in us-west-2 on 2026-09-10" in message
    assert CHANGE in message and "Amazon Nova Lite in us-east-1" in message
    assert '"base_model_id": "amazon.nova-lite-v1:0:300k"' in message


def test_legacy_warns_with_the_reason_and_the_change():
    [warning] = check_model(details("LEGACY", NOW + timedelta(days=40)), settings(), NOW)
    assert "is LEGACY in us-west-2 (end of life 2027-01-07)" in warning
    assert "no new Provisioned Throughput" in warning and CHANGE in warning


def test_a_retired_model_that_bedrock_no_longer_lists_gets_the_documented_date():
    class Gone:
        def get_foundation_model(self, modelIdentifier: str) -> dict:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "end of its life"}}
            raise ClientError(error, "GetFoundationModel")

    with pytest.raises(PreflightFailed) as failure:
        get_model_details(Gone(), settings())
    message = str(failure.value)
    assert "AWS documents its end of life in us-west-2 on 2026-09-10" in message
    assert "model-card-anthropic-claude-3-haiku" in message and CHANGE in message


def test_nova_lite_itself_is_pointed_at_another_nova_model():
    with pytest.raises(PreflightFailed) as failure:
        check_model(details("EOL"), settings(NOVA_LITE, "us-east-1"), NOW)
    assert "-c base_model_id=amazon.nova-pro-v1:0:300k" in str(failure.value)
