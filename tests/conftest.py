"""Shared fixtures: one synthesized template per test session, offline AWS credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Never reach a real AWS account from a test: fake credentials and a fixed region for every client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["AWS_DEFAULT_REGION"] = "us-west-2"
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bedrock-finetune")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "BedrockFineTuning")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@dataclass(frozen=True)
class Synthesized:
    """The app as `cdk synth` builds it from cdk.json, and its template."""

    stack: Any
    config: Any
    template: Any  # aws_cdk.assertions.Template
    json: dict[str, Any]  # the template as a dict, converted once (each to_json() is a jsii call)

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == resource_type}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Synthesize once per session, with cdk.json's context and cdk-nag on (as `make synth`)."""
    from aws_cdk.assertions import Template

    from stacks.application import build_app, cdk_json_context

    outdir = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context(**{"aws:cdk:enable-path-metadata": True})
    app, stack, config = build_app(context, environment={}, outdir=str(outdir))
    app.synth()  # runs the cdk-nag plugins; unacknowledged findings raise here
    template = Template.from_stack(stack)
    return Synthesized(stack=stack, config=config, template=template, json=template.to_json())


class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name = "test-function"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS call made inside the test."""
    from moto import mock_aws

    with mock_aws():
        yield


def subscribed_inbox() -> tuple[str, str]:
    """Inside moto: a notification topic with an SQS queue subscribed, so tests can read what was
    published. Returns (topic ARN, queue URL)."""
    import boto3

    sns = boto3.client("sns", region_name="us-west-2")
    topic_arn = sns.create_topic(Name="runs")["TopicArn"]
    sqs = boto3.client("sqs", region_name="us-west-2")
    queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, queue_url
