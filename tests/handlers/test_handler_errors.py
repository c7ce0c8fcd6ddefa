"""AWS errors that escape a use case leave the handler as the typed error the state machine retries, or not.

The failures are injected above botocore's own retries (``BaseClient._make_api_call``), which is what a
handler sees once boto3 has given up.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from bedrock_finetune.errors import TRANSIENT_ERRORS, AwsPermanentError, AwsTransientError
from bedrock_finetune.settings import CollectTrainingResultsSettings, NotifySettings, QualityGate
from tests.conftest import FakeLambdaContext, subscribed_inbox
from tests.handlers.runs import EXECUTION_ARN, RUN

SUCCEEDED = {
    "outcome": "succeeded",
    "state": {
        "run": RUN,
        "job": {"jobArn": "arn:job", "outputModelArn": "arn:custom-model", "hyperparameters": {}},
        "endpoint": {
            "endpointArn": "arn:provisioned-model",
            "mode": "provisioned",
            "kind": "provisioned_throughput",
        },
        "training": {"finalTrainingLoss": 0.5, "finalValidationLoss": 0.6, "epochs": 2, "steps": 10},
    },
    "executionArn": EXECUTION_ARN,
    "executionName": "exec-1",
}


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch, aws: None) -> str:
    """Given the bucket, a topic with an inbox, and Notify's settings. Returns the inbox's queue URL."""
    topic_arn, queue_url = subscribed_inbox()
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    settings = NotifySettings(
        topic_arn=topic_arn,
        bucket_name="data-bucket",
        pipeline_log_group="/pipeline/logs",
        region="us-west-2",
    )
    for name, value in settings.to_env(include_runtime=True).items():
        monkeypatch.setenv(name, value)
    return queue_url


def _published(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-west-2")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def _fail_first(monkeypatch: pytest.MonkeyPatch, operation: str, error: Exception) -> None:
    """The first call of ``operation`` fails with ``error``; later calls go through."""
    original = BaseClient._make_api_call
    failed: list[str] = []

    def make_api_call(self: Any, name: str, params: dict[str, Any]) -> Any:
        if name == operation and not failed:
            failed.append(name)
            raise error
        return original(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)


def _client_error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "emulated"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


@pytest.mark.parametrize(
    "error",
    [
        _client_error("InternalError", 500, "Publish"),
        _client_error("Throttled", 429, "Publish"),
        _client_error("KMSThrottling", 400, "Publish"),
        EndpointConnectionError(endpoint_url="https://sns.us-west-2.amazonaws.com/"),
    ],
    ids=["5xx", "throttled", "kms-throttled", "network"],
)
def test_a_transient_sns_failure_on_notify_success_is_retried_and_the_retry_delivers(
    inbox: str, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from handlers.notify import handler

    # Given SNS fails the first Publish
    _fail_first(monkeypatch, "Publish", error)
    # When Notify success runs, Then it fails with the type the state machine's Retry names
    with pytest.raises(AwsTransientError) as caught:
        handler(SUCCEEDED, FakeLambdaContext())
    assert type(caught.value).__name__ in TRANSIENT_ERRORS
    assert str(caught.value).startswith(("Publish: ", "AWS call in handlers.notify: "))
    assert _published(inbox) == []
    # When the state machine retries the task, Then the notice is delivered
    handler(SUCCEEDED, FakeLambdaContext())
    (message,) = _published(inbox)
    assert message["Subject"] == "[fine-tuning] run-1: model in service"


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            _client_error("AuthorizationError", 403, "Publish"),
            "Publish: AuthorizationError: emulated. Access",
        ),
        (
            _client_error("NotFound", 404, "Publish"),
            "Publish: NotFound: emulated. The resource does not exist",
        ),
        (ParamValidationError(report="Invalid length for parameter Subject"), "ParamValidationError"),
    ],
    ids=["access-denied", "topic-gone", "param-validation"],
)
def test_a_permanent_sns_failure_is_not_retried(
    inbox: str, monkeypatch: pytest.MonkeyPatch, error: Exception, says: str
) -> None:
    from handlers.notify import handler

    _fail_first(monkeypatch, "Publish", error)
    with pytest.raises(AwsPermanentError) as caught:
        handler(SUCCEEDED, FakeLambdaContext())
    assert type(caught.value).__name__ not in TRANSIENT_ERRORS
    assert says in str(caught.value)


def test_s3_throttling_while_collecting_training_results_is_retried(
    inbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.collect_training_results import handler

    settings = CollectTrainingResultsSettings(quality_gate=QualityGate(), default_epochs=2)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    _fail_first(monkeypatch, "ListObjectsV2", _client_error("SlowDown", 503, "ListObjectsV2"))
    event = {
        "run": RUN,
        "job": {"jobArn": "arn:aws:bedrock:us-west-2:123456789012:model-customization-job/m/abc123def456"},
        "executionArn": EXECUTION_ARN,
        "executionName": "exec-1",
    }
    with pytest.raises(AwsTransientError, match="ListObjectsV2: SlowDown"):
        handler(event, FakeLambdaContext())
    assert handler(event, FakeLambdaContext())["reportUri"] == "s3://data-bucket/reports/run-1/training.json"
