"""The emulated Bedrock runtime answers Converse on an emulated endpoint, and only there."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from finetune.local import bedrock, runtime

ACCOUNT, REGION = "123456789012", "us-west-2"
PT = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abc123def456"
UNKNOWN_PT = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/unknown00000"
DEPLOYMENT = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model-deployment/zzz999yyy888"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws(), bedrock.installed(), runtime.installed():
        yield boto3.client(
            "bedrock-runtime",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def _serve(arn: str, status: str, holding: str = "throughputs") -> None:
    state = bedrock.state_for(ACCOUNT, REGION)
    if not hasattr(state, holding):
        setattr(state, holding, {})
    getattr(state, holding)[arn] = SimpleNamespace(reported_status=status)


def _ask(client: Any, model_id: str, text: str = "Capital of Spain?", **extra: Any) -> Any:
    return client.converse(
        modelId=model_id, messages=[{"role": "user", "content": [{"text": text}]}], **extra
    )


def test_an_in_service_throughput_answers_with_a_labelled_synthetic_reply(client: Any) -> None:
    # Given a provisioned throughput in service in the emulated Bedrock
    _serve(PT, "InService")
    # When it is called twice with the same request, and once with another
    first = _ask(client, PT, system=[{"text": "Reply with JSON only."}])
    again = _ask(client, PT, system=[{"text": "Reply with JSON only."}])
    other = _ask(client, PT, "Capital of France?")
    # Then the answer says it is synthetic, is the same for the same request, and counts tokens
    text = first["output"]["message"]["content"][0]["text"]
    assert text.startswith(runtime.LABEL)
    assert "Capital of Spain?" in text
    assert again["output"] == first["output"]
    assert other["output"] != first["output"]
    usage = first["usage"]
    assert usage["inputTokens"] == 6 + 5  # about four characters a token: system, then the prompt
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > usage["inputTokens"]
    assert first["stopReason"] == "end_turn"


def test_max_tokens_cuts_the_answer(client: Any) -> None:
    _serve(PT, "InService")
    reply = _ask(client, PT, inferenceConfig={"maxTokens": 5})
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 5


def test_an_active_deployment_answers(client: Any) -> None:
    _serve(DEPLOYMENT, "Active", holding="deployments")
    assert _ask(client, DEPLOYMENT)["output"]["message"]["role"] == "assistant"


@pytest.mark.parametrize(
    ("model_id", "code"),
    [
        pytest.param(UNKNOWN_PT, "ResourceNotFoundException", id="an endpoint ARN the account does not hold"),
        pytest.param("my-model", "ValidationException", id="no endpoint ARN at all"),
        pytest.param(f"arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/base/abc", "ValidationException",
                     id="a custom model, which is served only through an endpoint"),
    ],
)  # fmt: skip
def test_anything_but_an_emulated_endpoint_is_refused_as_bedrock_does(
    client: Any, model_id: str, code: str
) -> None:
    with pytest.raises(ClientError) as caught:
        _ask(client, model_id)
    assert caught.value.response["Error"]["Code"] == code


def test_a_throughput_still_creating_is_not_ready(client: Any) -> None:
    _serve(PT, "Creating")
    with pytest.raises(ClientError) as caught:
        _ask(client, PT)
    assert caught.value.response["Error"]["Code"] == "ModelNotReadyException"
