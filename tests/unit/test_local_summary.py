"""``finetune local --json``: the document's shape, and the pieces it is built from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from moto import mock_aws

from finetune.local import bedrock
from finetune.local.cloud import Deployment, StackDeletion
from finetune.local.runner import LocalRun
from finetune.local.scenarios import SCENARIOS
from finetune.local.summary import (
    KEYS,
    build_summary,
    count_transitions,
    created,
    left_billing,
    summarize_report,
)

REGION, ACCOUNT = "us-west-2", "123456789012"
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:Pipeline:run-1"
PT = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/abcdefghijkl"


def _event(kind: str) -> dict[str, Any]:
    return {"type": kind, "timestamp": datetime.now(UTC)}


def _result(**overrides: Any) -> LocalRun:
    deployment = Deployment(
        stack_name="Stack",
        account=ACCOUNT,
        region=REGION,
        bucket="data",
        state_machine_arn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:Pipeline",
        topic_arn=f"arn:aws:sns:{REGION}:{ACCOUNT}:runs",
        trigger_rule="Trigger",
        definition="{}",
    )
    fields: dict[str, Any] = {
        "run": "orders-v1",
        "scenario": "abort-during-throughput",
        "execution_arn": EXECUTION,
        "status": "ABORTED",
        "error": None,
        "cause": None,
        "states": [],
        "polls": {"job": [], "throughput": ["Creating"]},
        "task_failures": [],
        "final_state": {},
        "notifications": [
            {
                "messageId": "1",
                "subject": "[fine-tuning] orders-v1: Execution aborted",
                "message": "body",
                "attributes": {},
            }
        ],
        "validation_report": None,
        "seconds": 1.0,
        "aws_seconds": 60.0,
        "deployment": deployment,
        "events": [
            _event("ExecutionStarted"),
            _event("PassStateEntered"),
            _event("PassStateExited"),
            _event("WaitStateEntered"),
            _event("TaskStateEntered"),
            _event("LambdaFunctionScheduled"),
            _event("ExecutionAborted"),
        ],
        "left_billing": {
            "throughputs": [{"arn": PT, "status": "Creating"}],
            "deployments": [],
            "running_jobs": [],
        },
        "created": {"jobs": [], "throughputs": [{"arn": PT, "status": "Creating"}], "deployments": []},
        "reports": {"reports/orders-v1/validation.json": {"valid": True}},
        "actions": ["StopExecution at throughput poll 1 (Creating)"],
    }
    fields.update(overrides)
    return LocalRun(**fields)


def test_the_document_has_the_documented_keys_and_shapes() -> None:
    document = build_summary(_result())
    assert tuple(document) == KEYS
    assert document["execution"] == {"arn": EXECUTION, "status": "ABORTED", "error": None, "cause": None}
    assert (document["scenario"], document["run"]) == ("abort-during-throughput", "orders-v1")
    assert document["notifications"] == [
        {"subject": "[fine-tuning] orders-v1: Execution aborted", "body": "body"}
    ]
    assert set(document["left_billing"]) == {"throughputs", "deployments", "running_jobs"}
    assert document["left_billing"]["throughputs"] == [{"arn": PT, "status": "Creating"}]
    assert document["left_billing"]["deployments"] == []
    assert set(document["created"]) == {"jobs", "throughputs", "deployments"}
    assert document["reports"] == {"reports/orders-v1/validation.json": {"valid": True}}
    assert document["transitions"] == 3  # the three *StateEntered events
    assert document["settled"] is True
    assert document["user_actions"] == ["StopExecution at throughput poll 1 (Creating)"]
    assert document["other_executions"] == []
    assert document["delivery_errors"] == []
    assert document["stack_deletion"] is None
    assert json.loads(json.dumps(document)) == document  # plain JSON, nothing to stringify


def test_an_unsettled_run_and_a_deletion_show_in_the_document() -> None:
    deletion = StackDeletion(
        stack_status="DELETE_COMPLETE",
        failure=None,
        responses=[],
        notifications=[{"subject": "[fine-tuning] Stack deleted", "message": "teardown"}],
        invocations=[],
    )
    document = build_summary(_result(unsettled=[EXECUTION], deletion=deletion))
    assert document["settled"] is False
    assert document["stack_deletion"] == {"status": "DELETE_COMPLETE", "failure": None}
    assert [n["subject"] for n in document["notifications"]] == [
        "[fine-tuning] orders-v1: Execution aborted",
        "[fine-tuning] Stack deleted",
    ]


def test_transitions_count_state_entries_only() -> None:
    kinds = [
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    ]
    assert count_transitions({"type": k} for k in kinds) == 2


def test_reports_are_summarized_by_file_name() -> None:
    validation = {
        "valid": False,
        "error_counts": {"INVALID_JSON": 2, "MISSING_USER_TURN": 1},
        "warning_counts": {"DUPLICATE": 1},
        "files": {"train": {"records": 40}, "hyperparameters": {"path": "s3://x"}},
    }
    assert summarize_report("reports/r/validation.json", validation) == {
        "valid": False,
        "errors": 3,
        "warnings": 1,
        "error_counts": {"INVALID_JSON": 2, "MISSING_USER_TURN": 1},
        "records": {"train": 40},
    }
    training = {
        "finalTrainingLoss": 0.8,
        "finalValidationLoss": 0.9,
        "epochs": 2,
        "steps": 10,
        "qualityGate": {"passed": True},
    }
    assert summarize_report("reports/r/training.json", training) == {
        "finalTrainingLoss": 0.8,
        "finalValidationLoss": 0.9,
        "epochs": 2,
        "steps": 10,
        "earlyStopped": None,
        "qualityGatePassed": True,
    }
    run = {"outcome": "failed", "error": "ExecutionAborted", "cleanup": "deleted provisioned throughput x"}
    assert summarize_report("reports/r/run.json", run) == {
        "outcome": "failed",
        "error": "ExecutionAborted",
        "endpoint": None,
        "lineVersion": None,
        "cleanup": "deleted provisioned throughput x",
    }
    assert summarize_report("reports/r/other.json", {"b": 1, "a": 2}) == {"keys": ["a", "b"]}
    assert summarize_report("reports/r/run.json", ["not", "an", "object"]) == {"unreadable": True}


def test_left_billing_and_created_read_the_emulated_bedrock_without_polling() -> None:
    with mock_aws(), bedrock.installed():
        bedrock.configure(SCENARIOS["ok"])
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="data", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="data", Key="datasets/r/train.jsonl", Body=b'{"a": 1}\n' * 8)
        client = boto3.client("bedrock", region_name=REGION)
        common = {
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
            "baseModelIdentifier": "anthropic.claude-3-haiku-20240307-v1:0:200k",
            "trainingDataConfig": {"s3Uri": "s3://data/datasets/r/train.jsonl"},
            "outputDataConfig": {"s3Uri": "s3://data/outputs/r/"},
        }
        done = client.create_model_customization_job(jobName="done", customModelName="done-model", **common)
        running = client.create_model_customization_job(
            jobName="running", customModelName="running-model", **common
        )
        for _ in range(3):
            job = client.get_model_customization_job(jobIdentifier=done["jobArn"])
        model = job["outputModelArn"]
        kept = client.create_provisioned_model_throughput(
            modelUnits=1, provisionedModelName="kept", modelId=model
        )
        gone = client.create_provisioned_model_throughput(
            modelUnits=1, provisionedModelName="gone", modelId=model
        )
        for _ in range(3):
            client.get_provisioned_model_throughput(provisionedModelId=gone["provisionedModelArn"])
        client.delete_provisioned_model_throughput(provisionedModelId=gone["provisionedModelArn"])

        billing = left_billing(ACCOUNT, REGION)
        assert billing == {
            "throughputs": [{"arn": kept["provisionedModelArn"], "status": "Creating"}],
            "deployments": [],
            "running_jobs": [{"arn": running["jobArn"], "status": "InProgress"}],
        }
        assert left_billing(ACCOUNT, REGION) == billing  # reading moved no status on
        assert created(ACCOUNT, REGION) == {
            "jobs": [
                {"arn": done["jobArn"], "status": "Completed"},
                {"arn": running["jobArn"], "status": "InProgress"},
            ],
            "throughputs": [
                {"arn": kept["provisionedModelArn"], "status": "Creating"},
                {"arn": gone["provisionedModelArn"], "status": "Deleted"},
            ],
            "deployments": [],
        }
