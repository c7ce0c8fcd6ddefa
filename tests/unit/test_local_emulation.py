"""The local emulation's own pieces: emulated Bedrock, EventBridge input transformation, time."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sns.models import sns_backends

from finetune.local import bedrock
from finetune.local.events import transform_input
from finetune.local.scenarios import SCENARIOS
from finetune.local.sns import PublishFailures
from finetune.local.timing import Clock

REGION = "us-west-2"
BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
ROLE = "arn:aws:iam::123456789012:role/bedrock-service"


def _records(n: int, width: int) -> bytes:
    return b"".join(json.dumps({"i": i, "text": "x" * (width + i % 5)}).encode() + b"\n" for i in range(n))


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws(), bedrock.installed():
        bedrock.configure(SCENARIOS["ok"])
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="data", Key="datasets/r/train.jsonl", Body=_records(64, 200))
        s3.put_object(Bucket="data", Key="datasets/r/validation.jsonl", Body=_records(16, 300))
        yield {"s3": s3, "bedrock": boto3.client("bedrock", region_name=REGION)}
    bedrock.configure(SCENARIOS["ok"])


def _create_job(client: Any, name: str = "ft-r", token: str = "job-abc") -> str:
    return str(
        client.create_model_customization_job(
            jobName=name,
            customModelName=f"{name}-model",
            roleArn=ROLE,
            baseModelIdentifier=BASE,
            clientRequestToken=token,
            trainingDataConfig={"s3Uri": "s3://data/datasets/r/train.jsonl"},
            validationDataConfig={"validators": [{"s3Uri": "s3://data/datasets/r/validation.jsonl"}]},
            outputDataConfig={"s3Uri": "s3://data/outputs/r/"},
            hyperParameters={"epochCount": "2", "batchSize": "16"},
            jobTags=[{"key": "finetune:run", "value": "r"}],
            customModelTags=[{"key": "finetune:run", "value": "r"}],
        )["jobArn"]
    )


def test_job_progresses_over_polls_by_arn_or_name_and_writes_metrics(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    arn = _create_job(client)
    assert re.match(
        rf"^arn:aws:bedrock:{REGION}:123456789012:model-customization-job/{re.escape(BASE)}/[a-z0-9]{{12}}$",
        arn,
    )
    statuses = [
        client.get_model_customization_job(jobIdentifier=arn)["status"],
        client.get_model_customization_job(jobIdentifier="ft-r")["status"],
    ]
    done = client.get_model_customization_job(jobIdentifier=arn)
    assert [*statuses, done["status"]] == ["InProgress", "InProgress", "Completed"]
    assert done["outputModelArn"].startswith(f"arn:aws:bedrock:{REGION}:123456789012:custom-model/{BASE}/")
    assert client.get_custom_model(modelIdentifier=done["outputModelArn"])["modelName"] == "ft-r-model"

    job_id = arn.rsplit("/", 1)[1]
    prefix = f"outputs/r/model-customization-job-{job_id}/"
    keys = {o["Key"] for o in aws["s3"].list_objects_v2(Bucket="data", Prefix=prefix)["Contents"]}
    assert keys == {
        f"{prefix}training_artifacts/step_wise_training_metrics.csv",
        f"{prefix}validation_artifacts/post_fine_tuning_validation/validation_metrics.csv",
    }
    assert done["trainingMetrics"]["trainingLoss"] > 0
    assert done["validationMetrics"][0]["validationLoss"] > done["trainingMetrics"]["trainingLoss"]
    tags = client.list_tags_for_resource(resourceARN=arn)["tags"]
    assert tags == [{"key": "finetune:run", "value": "r"}]


def test_create_is_idempotent_on_the_token_and_unknown_jobs_are_not_found(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    assert _create_job(client) == _create_job(client)
    with pytest.raises(ClientError) as caught:
        client.get_model_customization_job(jobIdentifier="no-such-job")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_throughput_needs_a_completed_custom_model_then_goes_in_service(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    arn = _create_job(client)
    model_arn = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/{BASE}/000000000000"
    with pytest.raises(ClientError) as caught:
        client.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt", modelId=model_arn)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    for _ in range(3):
        job = client.get_model_customization_job(jobIdentifier=arn)
    pt_arn = client.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt", modelId=job["outputModelArn"], clientRequestToken="pt-1"
    )["provisionedModelArn"]
    assert re.match(rf"^arn:aws:bedrock:{REGION}:123456789012:provisioned-model/[a-z0-9]{{12}}$", pt_arn)
    seen = [
        client.get_provisioned_model_throughput(provisionedModelId=i)["status"]
        for i in (pt_arn, "pt", pt_arn)
    ]
    assert seen == ["Creating", "Creating", "InService"]
    client.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
    assert client.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []


def test_deleting_a_creating_throughput_answers_conflict_until_it_is_in_service(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    arn = _create_job(client)
    for _ in range(3):
        job = client.get_model_customization_job(jobIdentifier=arn)
    pt_arn = client.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt", modelId=job["outputModelArn"]
    )["provisionedModelArn"]
    no_retry = boto3.client(
        "bedrock", region_name=REGION, config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    # Bedrock refuses while the throughput is Creating: ConflictException, HTTP 400, nothing deleted
    with pytest.raises(ClientError) as caught:
        no_retry.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ConflictException", 400)
    assert pt_arn in error["Error"]["Message"]
    assert "Creating" in error["Error"]["Message"]
    [summary] = client.list_provisioned_model_throughputs()["provisionedModelSummaries"]
    assert summary["status"] == "Creating"
    # Once it is InService, it can be deleted
    statuses = [
        client.get_provisioned_model_throughput(provisionedModelId=pt_arn)["status"] for _ in range(3)
    ]
    assert statuses == ["Creating", "Creating", "InService"]
    client.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
    assert client.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []


def test_a_committed_throughput_cannot_be_deleted_even_in_service(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    arn = _create_job(client)
    for _ in range(3):
        job = client.get_model_customization_job(jobIdentifier=arn)
    pt_arn = client.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt", modelId=job["outputModelArn"], commitmentDuration="OneMonth"
    )["provisionedModelArn"]
    for _ in range(3):
        client.get_provisioned_model_throughput(provisionedModelId=pt_arn)
    with pytest.raises(ClientError) as caught:
        client.delete_provisioned_model_throughput(provisionedModelId=pt_arn)
    assert caught.value.response["Error"]["Code"] == "ConflictException"
    assert "commitment term" in caught.value.response["Error"]["Message"]


def test_publish_errors_fail_each_call_with_all_its_retries_then_publish() -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="runs")["TopicArn"]
        failures = PublishFailures(SCENARIOS["notify-transient-failure"])
        with failures.installed():
            # The first call fails on every attempt (boto3 retries it inside the call) ...
            with pytest.raises(ClientError) as caught:
                sns.publish(TopicArn=topic, Subject="first", Message="m")
            response = caught.value.response
            assert response["Error"]["Code"] == "InternalError"
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert response["ResponseMetadata"]["RetryAttempts"] > 0
            # ... the next one is published
            sns.publish(TopicArn=topic, Subject="second", Message="m")
        attempts = response["ResponseMetadata"]["RetryAttempts"] + 1
        assert failures.failed == [("InternalError", topic, "first")] * attempts
        published = sns_backends["123456789012"][REGION].topics[topic].sent_notifications
        assert [subject for _, _, subject, _, _ in published] == ["second"]


def test_stop_moves_a_running_job_to_stopped(aws: dict[str, Any]) -> None:
    client = aws["bedrock"]
    arn = _create_job(client)
    client.stop_model_customization_job(jobIdentifier=arn)
    assert client.get_model_customization_job(jobIdentifier=arn)["status"] == "Stopped"
    with pytest.raises(ClientError) as caught:
        client.stop_model_customization_job(jobIdentifier=arn)
    assert caught.value.response["Error"]["Code"] == "ConflictException"


def test_throttled_scenario_answers_429_throttling_then_serves(aws: dict[str, Any]) -> None:
    bedrock.configure(SCENARIOS["throttled"])
    client = boto3.client(
        "bedrock", region_name=REGION, config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    codes = []
    for _ in range(5):
        try:
            client.list_model_customization_jobs()
            codes.append("ok")
        except ClientError as exc:
            codes.append(
                f"{exc.response['Error']['Code']}/{exc.response['ResponseMetadata']['HTTPStatusCode']}"
            )
    assert codes == ["ThrottlingException/429"] * 4 + ["ok"]


def test_losses_are_deterministic_and_follow_the_data() -> None:
    short = [json.dumps({"t": "x" * 100})] * 64
    long = [json.dumps({"t": "x" * 4000})] * 64
    hyper = {"epochCount": "3", "batchSize": "16"}
    curve = bedrock._loss_curve(short, hyper)
    assert curve == bedrock._loss_curve(short, hyper)
    assert [(s, e) for s, e, _ in curve] == [(s, s // 4) for s in range(12)]
    losses = [loss for _, _, loss in curve]
    assert losses[-1] < losses[0] and len(set(losses)) > 1
    assert bedrock._loss_curve(long, hyper)[0][2] > losses[0]


TEMPLATE = '{"bucket":<b>,"key":<k>,"note":"key <k> in <b>","versionId":<v>}'


def test_input_transformer_quotes_values_in_json_and_not_inside_strings() -> None:
    paths = {"b": "$.detail.bucket.name", "k": "$.detail.object.key", "v": "$.detail.object.version-id"}
    target = {"InputTransformer": {"InputPathsMap": paths, "InputTemplate": TEMPLATE}}
    event = {"detail": {"bucket": {"name": "data"}, "object": {"key": "datasets/r/train.jsonl"}}}
    assert transform_input(target, event, "arn", "rule") == {
        "bucket": "data",
        "key": "datasets/r/train.jsonl",
        "note": "key datasets/r/train.jsonl in data",
        "versionId": None,  # the path is missing from the event
    }


def test_clock_scales_waits_and_keeps_aws_time() -> None:
    clock = Clock(scale=0)
    assert clock.waited(600) == 0
    clock.mark()
    assert clock.aws_seconds == 600
    assert clock.aws_time_at(clock.marks[-1][0]) == 600
