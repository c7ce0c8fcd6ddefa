"""The thin handlers, invoked as Lambda would, against moto (and a Stubber where moto lacks an API)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from bedrock_finetune.catalog import BUILTIN_MODELS, CLAUDE_3_HAIKU
from bedrock_finetune.errors import QualityGateNotMet
from bedrock_finetune.settings import (
    CleanUpSettings,
    CollectTrainingResultsSettings,
    NotifySettings,
    QualityGate,
    Settings,
    StartCustomizationJobSettings,
    ValidateDatasetSettings,
)
from tests.conftest import FakeLambdaContext, subscribed_inbox
from tests.handlers.runs import EXECUTION_ARN, RUN

STACK_TAG = "arn:aws:cloudformation:us-west-2:123456789012:stack/BedrockFineTuning/1"
FROZEN_TRAIN = "s3://data-bucket/frozen/run-1/ft-run-1-0123456789ab/train.jsonl"
FROZEN_VALIDATION = "s3://data-bucket/frozen/run-1/ft-run-1-0123456789ab/validation.jsonl"


def set_settings(monkeypatch: pytest.MonkeyPatch, *all_settings: Settings) -> None:
    """Set the functions' environment as their constructs (and the Lambda runtime) would."""
    for one in all_settings:
        for name, value in one.to_env(include_runtime=True).items():
            monkeypatch.setenv(name, value)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, aws: None) -> dict[str, str]:
    """Given the bucket and a topic with an inbox, and every task's settings in the environment."""
    topic_arn, queue_url = subscribed_inbox()
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="data-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    tagging = {"stack_tag": STACK_TAG, "resource_tags": {"project": "bedrock-finetune"}}
    set_settings(
        monkeypatch,
        StartCustomizationJobSettings(
            service_role_arn="arn:aws:iam::123456789012:role/service-role",
            base_model_id="anthropic.claude-3-haiku-20240307-v1:0:200k",
            custom_model_kms_key_arn=None,
            **tagging,
        ),
        NotifySettings(
            topic_arn=topic_arn,
            bucket_name="data-bucket",
            pipeline_log_group="/pipeline/logs",
            region="us-west-2",
        ),
        CollectTrainingResultsSettings(quality_gate=QualityGate(), default_epochs=2),
    )
    return {"stack_tag": STACK_TAG, "queue_url": queue_url}


def _published(env: dict[str, str]) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name="us-west-2")
    messages = sqs.receive_message(QueueUrl=env["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_start_job_handler_tags_the_job_with_its_lineage(env: dict[str, str]) -> None:
    from handlers.start_customization_job import handler

    event = {
        "run": RUN,
        "validation": {
            "hasValidation": True,
            "hyperparameters": {"epochCount": 3, "learningRateMultiplier": 0.5},
            "trainingUri": FROZEN_TRAIN,
            "validationUri": FROZEN_VALIDATION,
        },
        "executionArn": EXECUTION_ARN,
        "executionName": "exec-1",
    }
    result = handler(event, FakeLambdaContext())
    assert result["hyperparameters"] == {"epochCount": "3", "learningRateMultiplier": "0.5"}
    bedrock = boto3.client("bedrock", region_name="us-west-2")
    job = bedrock.get_model_customization_job(jobIdentifier=result["jobName"])
    assert job["hyperParameters"] == {"epochCount": "3", "learningRateMultiplier": "0.5"}
    # It trains on the frozen copies of what was validated, never on datasets/ (which may have changed).
    assert job["trainingDataConfig"]["s3Uri"] == FROZEN_TRAIN
    assert job["validationDataConfig"]["validators"] == [{"s3Uri": FROZEN_VALIDATION}]
    assert job["outputDataConfig"]["s3Uri"] == "s3://data-bucket/outputs/run-1/"
    tags = {
        t["key"]: t["value"] for t in bedrock.list_tags_for_resource(resourceARN=result["jobArn"])["tags"]
    }
    assert tags == {
        "project": "bedrock-finetune",
        "finetune:run": "run-1",
        "finetune:dataset": "s3://data-bucket/datasets/run-1/train.jsonl",
        "finetune:dataset-version": "v1",
        "finetune:execution": EXECUTION_ARN,
        "finetune:stack": env["stack_tag"],
    }


def test_notify_failure_says_which_step_why_and_where_to_look(env: dict[str, str]) -> None:
    from handlers.notify import handler

    cause = json.dumps(
        {"errorType": "BedrockQuotaExceeded", "errorMessage": "no model units; ask AWS Support"}
    )
    state = {
        "run": RUN,
        "validation": {"reportUri": "s3://data-bucket/reports/run-1/validation.json"},
        "failure": {"step": "Create provisioned throughput", "error": "BedrockQuotaExceeded", "cause": cause},
        "cleanup": {"summary": "nothing to clean up (no running job, no endpoint this run created)"},
    }
    result = handler(
        {"outcome": "failed", "state": state, "executionArn": EXECUTION_ARN, "executionName": "exec-1"},
        FakeLambdaContext(),
    )
    assert result["error"] == "BedrockQuotaExceeded"
    assert result["cause"] == (
        "Create provisioned throughput failed: no model units; ask AWS Support. CloudWatch Logs "
        "/pipeline/logs and the execution history have the details."
    )
    (message,) = _published(env)
    assert message["Subject"] == "[fine-tuning] run-1: Create provisioned throughput failed"
    assert "Failed step: Create provisioned throughput" in message["Message"]
    assert "Why: no model units; ask AWS Support" in message["Message"]
    assert "Clean-up: nothing to clean up" in message["Message"]
    assert message["MessageAttributes"]["outcome"]["Value"] == "failed"


def test_notify_success_names_run_custom_model_endpoint_estimate_and_rollback(env: dict[str, str]) -> None:
    from handlers.notify import handler

    state = {
        "run": RUN,
        "job": {
            "jobArn": "arn:job",
            "outputModelArn": "arn:custom-model",
            "hyperparameters": {"epochCount": "2"},
        },
        "serving": {"estimate": {"perHour": {"text": "about $20.00 per hour (an estimate)"}}},
        "endpoint": {
            "mode": "provisioned",
            "kind": "provisioned_throughput",
            "endpointArn": "arn:provisioned-model",
            "done": "updated",
            "previousModelArn": "arn:old-model",
        },
        "line": {
            "version": 2,
            "rollback": {"command": "finetune rollback run-1 --stack S --region us-west-2"},
        },
        "training": {"finalTrainingLoss": 0.5, "finalValidationLoss": 0.6, "epochs": 2, "steps": 10},
    }
    handler(
        {"outcome": "succeeded", "state": state, "executionArn": EXECUTION_ARN, "executionName": "exec-1"},
        FakeLambdaContext(),
    )
    (message,) = _published(env)
    assert message["Subject"] == "[fine-tuning] run-1: model in service"
    body = message["Message"]
    assert "Run (model line): run-1" in body
    assert "Endpoint ARN (use as modelId; stable across versions): arn:provisioned-model" in body
    assert "Previous model (kept): arn:old-model" in body
    assert "Roll back with: finetune rollback run-1 --stack S --region us-west-2" in body
    assert "Estimated cost per hour: about $20.00 per hour (an estimate)" in body
    assert "Custom model ARN: arn:custom-model" in body
    assert "Final validation loss: 0.6" in body
    assert "billed every hour" in body
    # And reports/<run>/run.json links everything the run made
    s3 = boto3.client("s3", region_name="us-west-2")
    record = json.loads(s3.get_object(Bucket="data-bucket", Key="reports/run-1/run.json")["Body"].read())
    assert record == {
        "run": "run-1",
        "outcome": "succeeded",
        "error": None,
        "cause": None,
        "dataset": {
            "uri": "s3://data-bucket/datasets/run-1/train.jsonl",
            "versionId": "v1",
            "etag": '"etag1"',
        },
        "execution": EXECUTION_ARN,
        "validationReport": None,
        "trainingReport": None,
        "customizationJob": "arn:job",
        "hyperparameters": {"epochCount": "2"},
        "customModel": "arn:custom-model",
        "endpoint": "arn:provisioned-model",
        "endpointKind": "provisioned_throughput",
        "endpointStatus": None,
        "lineVersion": 2,
        "estimate": {"perHour": {"text": "about $20.00 per hour (an estimate)"}},
        "cleanup": None,
        "stillBilling": [],
    }


def test_collect_training_results_writes_the_report_and_applies_the_gate(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.collect_training_results import handler

    set_settings(
        monkeypatch, CollectTrainingResultsSettings(quality_gate=QualityGate(max_validation_loss=1.0))
    )
    s3 = boto3.client("s3", region_name="us-west-2")
    prefix = "outputs/run-1/model-customization-job-abc123def456"
    s3.put_object(
        Bucket="data-bucket",
        Key=f"{prefix}/validation_artifacts/post_fine_tuning_validation/validation_metrics.csv",
        Body="step_number,epoch_number,validation_loss,perplexity\n0,0,2.0,7\n1,1,1.5,4.5\n",
    )
    job = {
        "jobArn": "arn:aws:bedrock:us-west-2:123456789012:model-customization-job/m/abc123def456",
        "outputModelArn": "arn:custom-model",
        "hyperparameters": {"epochCount": "2"},
    }
    # When the results are collected for a final validation loss above the gate's maximum
    with pytest.raises(QualityGateNotMet) as raised:
        handler(
            {"run": RUN, "job": job, "executionArn": EXECUTION_ARN, "executionName": "e"},
            FakeLambdaContext(),
        )
    # Then the task fails with QualityGateNotMet (the state machine's Catch: Quality gate not met),
    # naming the reason and the report, which was written first
    assert str(raised.value) == (
        "final validation loss 1.5000 is above the configured maximum 1; the custom model is kept, no "
        "throughput was bought. The training report s3://data-bucket/reports/run-1/training.json has "
        "the losses."
    )
    report = json.loads(s3.get_object(Bucket="data-bucket", Key="reports/run-1/training.json")["Body"].read())
    assert report["finalValidationLoss"] == 1.5
    assert report["qualityGate"]["passed"] is False
    assert report["run"] == "run-1"
    assert report["execution"] == EXECUTION_ARN
    assert report["dataset"] == "s3://data-bucket/datasets/run-1/train.jsonl"
    assert report["customModelArn"] == "arn:custom-model"


def test_ended_execution_is_cleaned_up_and_looked_at_once_more(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given an aborted execution whose job runs, when its clean-up runs, then the job is stopped, the
    failure to report is ExecutionAborted, and it asks for one more look (an abort can race a create)."""
    from handlers.clean_up_ended_execution import handler
    from handlers.start_customization_job import handler as start

    set_settings(monkeypatch, CleanUpSettings(max_attempts=5))
    bedrock = boto3.client("bedrock", region_name="us-west-2")
    started = start(
        {
            "run": RUN,
            "validation": {"hasValidation": False, "trainingUri": FROZEN_TRAIN},
            "executionArn": EXECUTION_ARN,
            "executionName": "x",
        },
        FakeLambdaContext(),
    )
    detail = {"executionArn": EXECUTION_ARN, "name": "exec-1", "status": "ABORTED"}
    # moto has no throughput or deployment API: answer those calls the way Bedrock does for missing ones.
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call

    def make_api_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation in ("GetProvisionedModelThroughput", "GetCustomModelDeployment"):
            raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    result = handler({"run": RUN, "detail": detail, "previous": {"attempt": 0}}, FakeLambdaContext())
    assert result["jobStopped"] is True
    assert bedrock.get_model_customization_job(jobIdentifier=started["jobName"])["status"] == "Stopped"
    assert result["failure"]["error"] == "ExecutionAborted"
    assert (result["attempt"], result["retry"]) == (1, True)
    again = handler({"run": RUN, "detail": detail, "previous": result}, FakeLambdaContext())
    # The second look finds nothing new, and keeps what the first attempt did for the notice.
    assert (again["attempt"], again["retry"], again["jobStopped"]) == (2, False, True)
    assert f"stopped customization job {started['jobArn']}" in again["summary"]


def test_a_failed_execution_that_went_through_its_chain_is_left_alone() -> None:
    """FAILED executions reach the clean-up too (the history limit skips the chain); those whose last
    events show a Fail state were handled by their own chain."""
    from bedrock_finetune.ended_execution import clean_up_ended_execution
    from bedrock_finetune.run_ref import RunRef

    def history(arn: str) -> list[dict[str, Any]]:
        return [{"type": "ExecutionFailed"}, {"type": "FailStateEntered"}, {"type": "TaskSucceeded"}]

    result = clean_up_ended_execution(
        object(),  # any Bedrock call would fail: nothing may be touched
        history,
        CleanUpSettings(max_attempts=3),
        run=RunRef.from_state(RUN),
        detail={"executionArn": EXECUTION_ARN, "status": "FAILED"},
        previous={"attempt": 0},
    )
    assert result["handled"] is True


def _upload_run(files: dict[str, bytes]) -> str:
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.put_bucket_versioning(Bucket="data-bucket", VersioningConfiguration={"Status": "Enabled"})
    version = ""
    for name, body in files.items():
        response = s3.put_object(Bucket="data-bucket", Key=f"datasets/run-1/{name}", Body=body)
        if name == "train.jsonl":
            version = response["VersionId"]
    return version


@pytest.fixture
def validator_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    set_settings(
        monkeypatch,
        ValidateDatasetSettings(
            base_model_id=CLAUDE_3_HAIKU,
            model_spec=BUILTIN_MODELS[CLAUDE_3_HAIKU].to_dict(),
            default_hyperparameters={"epochCount": 2},
            chars_per_token=3,
        ),
    )


def test_validate_handler_accepts_the_sample_run_and_writes_its_report(validator_env: None) -> None:
    from pathlib import Path

    from handlers.validate_dataset import handler

    sample = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"
    version = _upload_run({p.name: p.read_bytes() for p in sample.iterdir()})
    summary = handler(
        {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "e"},
        FakeLambdaContext(),
    )
    assert summary["valid"] is True
    assert summary["hasValidation"] is True
    assert summary["records"] == {"train": 87, "validation": 42}
    # hyperparameters.json overrides the configured default epochCount
    assert summary["hyperparameters"] == {"epochCount": 2, "batchSize": 8, "learningRateMultiplier": 1.0}
    assert summary["estimatedBillableTokens"] == summary["estimatedTokens"] * 2
    s3 = boto3.client("s3", region_name="us-west-2")
    report = json.loads(
        s3.get_object(Bucket="data-bucket", Key="reports/run-1/validation.json")["Body"].read()
    )
    assert report["valid"] is True
    assert summary["reportUri"] == "s3://data-bucket/reports/run-1/validation.json"


def test_validate_handler_stops_an_invalid_run_with_the_first_errors(validator_env: None) -> None:
    from bedrock_finetune.errors import DatasetInvalid
    from handlers.validate_dataset import handler

    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    lines = [good] * 40 + ['{"messages": []}', "not json"]
    version = _upload_run({"train.jsonl": ("\n".join(lines) + "\n").encode()})
    with pytest.raises(DatasetInvalid) as caught:
        handler(
            {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "e"},
            FakeLambdaContext(),
        )
    message = str(caught.value)
    assert "train line 41: TOO_FEW_MESSAGES" in message
    assert "train line 42: INVALID_JSON" in message
    assert "Full report: s3://data-bucket/reports/run-1/validation.json" in message
    s3 = boto3.client("s3", region_name="us-west-2")
    report = json.loads(
        s3.get_object(Bucket="data-bucket", Key="reports/run-1/validation.json")["Body"].read()
    )
    assert report["valid"] is False
    assert report["error_counts"]["INVALID_JSON"] == 1


def test_validate_handler_writes_the_report_when_reading_stops_at_the_line_bound(
    validator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a deployment whose model takes at most 40 training records and a train.jsonl of 40
    records then 100,000 blank lines (a billion would outlast the Lambda), when validated, then
    reading stops after 80 lines and the report is written, with TOO_MANY_LINES."""
    from dataclasses import replace

    from bedrock_finetune.errors import DatasetInvalid
    from handlers.validate_dataset import handler

    haiku = BUILTIN_MODELS[CLAUDE_3_HAIKU]
    small = replace(haiku, limits=replace(haiku.limits, min_train_records=1, max_train_records=40))
    set_settings(
        monkeypatch,
        ValidateDatasetSettings(
            base_model_id=CLAUDE_3_HAIKU,
            model_spec=small.to_dict(),
            default_hyperparameters={"epochCount": 2},
            chars_per_token=3,
        ),
    )
    good = [
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
        )
        for i in range(40)
    ]
    version = _upload_run({"train.jsonl": ("\n".join(good) + "\n" * 100_000).encode()})
    with pytest.raises(DatasetInvalid) as caught:
        handler(
            {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "e"},
            FakeLambdaContext(),
        )
    assert "train line 41: BLANK_LINE" in str(caught.value)
    assert "Full report: s3://data-bucket/reports/run-1/validation.json" in str(caught.value)
    s3 = boto3.client("s3", region_name="us-west-2")
    report = json.loads(
        s3.get_object(Bucket="data-bucket", Key="reports/run-1/validation.json")["Body"].read()
    )
    assert report["valid"] is False
    assert report["error_counts"] == {"BLANK_LINE": 40, "TOO_MANY_LINES": 1}
    (too_many,) = [e for e in report["errors"] if e["code"] == "TOO_MANY_LINES"]
    assert too_many["line"] is None and "more than 80 lines" in too_many["message"]
    assert report["files"]["train"]["records"] == 40


def test_validate_handler_rejects_a_run_name_bedrock_cannot_use(validator_env: None) -> None:
    from bedrock_finetune.errors import DatasetInvalid
    from handlers.validate_dataset import handler

    run = {**RUN, "key": "datasets/my run/train.jsonl", "run": "my run"}
    with pytest.raises(DatasetInvalid, match=r"run name 'my run'.*Rename the folder"):
        handler({"run": run, "executionArn": EXECUTION_ARN, "executionName": "e"}, FakeLambdaContext())


def test_the_tracer_is_created_on_the_first_invocation_and_wraps_the_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given a handler decorated with the lazy tracer, when invoked twice, then Powertools' Tracer is
    created once, at the first call (not at import), and every call goes through its capture."""
    import aws_lambda_powertools

    from handlers._runtime import _LazyTracer

    created: list[object] = []
    captured: list[object] = []

    class FakeTracer:
        def __init__(self) -> None:
            created.append(self)

        def capture_lambda_handler(self, handler: Any) -> Any:
            def wrapped(event: Any, context: Any) -> Any:
                captured.append(event)
                return handler(event, context)

            return wrapped

    monkeypatch.setattr(aws_lambda_powertools, "Tracer", FakeTracer)
    handler = _LazyTracer().capture_lambda_handler(lambda event, context: {"echo": event})
    assert created == []
    assert handler(1, None) == {"echo": 1}
    assert handler(2, None) == {"echo": 2}
    assert len(created) == 1
    assert captured == [1, 2]


def test_a_reupload_before_validation_does_not_change_what_is_frozen_for_training(
    validator_env: None,
) -> None:
    """Given version 1 of a run uploaded and then a second train.jsonl (version 2) while run 1 waits,
    when run 1 is validated, then the frozen copy it will train on is version 1, byte for byte."""
    from pathlib import Path

    from handlers.validate_dataset import handler

    sample = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"
    first = {p.name: p.read_bytes() for p in sample.iterdir()}
    version = _upload_run(first)
    second = first["train.jsonl"] + first["train.jsonl"].splitlines(keepends=True)[0]  # one record more
    _upload_run({"train.jsonl": second})
    summary = handler(
        {"run": {**RUN, "versionId": version}, "executionArn": EXECUTION_ARN, "executionName": "e"},
        FakeLambdaContext(),
    )
    s3 = boto3.client("s3", region_name="us-west-2")
    bucket, key = summary["trainingUri"].removeprefix("s3://").split("/", 1)
    assert key.startswith("frozen/run-1/ft-run-1-")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == first["train.jsonl"]
    validation_key = summary["validationUri"].removeprefix(f"s3://{bucket}/")
    assert s3.get_object(Bucket=bucket, Key=validation_key)["Body"].read() == first["validation.jsonl"]
    assert summary["versions"]["train"] == version
