"""The synthesized state machine and the real handlers, run end to end in the local emulation."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from finetune.local.cloud import LocalCloud
from finetune.local.runner import follow
from finetune.local.scenarios import scenario
from finetune.local.template import Synthesized, resolve
from finetune.local.timing import Clock
from tests.e2e.conftest import TRAIN_RECORDS, VALIDATION_RECORDS, run_in_emulation

pytestmark = pytest.mark.e2e

ACCOUNT, REGION = "123456789012", "us-west-2"
BASE = "anthropic.claude-3-haiku-20240307-v1:0:200k"
CUSTOM_MODEL_ARN = re.compile(
    rf"^arn:aws:bedrock:{REGION}:{ACCOUNT}:custom-model/{re.escape(BASE)}/[a-z0-9]{{12}}$"
)
PROVISIONED_ARN = re.compile(rf"^arn:aws:bedrock:{REGION}:{ACCOUNT}:provisioned-model/[a-z0-9]{{12}}$")
JOB_ARN = re.compile(
    rf"^arn:aws:bedrock:{REGION}:{ACCOUNT}:model-customization-job/{re.escape(BASE)}/[a-z0-9]{{12}}$"
)

START = [
    "Identify run",
    "Upload is a run?",
    "Join the training queue",
    "Let uploads settle",
    "Validate dataset",
    "Take a training slot",
    "Training slot taken?",
    "Start customization job",
]
#: One state however long the job trains: its end wakes it (a failed or stopped job fails it).
JOB_WAIT = ["Wait for the job to end"]
THROUGHPUT_POLL = ["Wait for endpoint", "Get endpoint status", "Endpoint ready?"]
TO_THROUGHPUT = [
    "Collect training results",
    "Plan serving",
    "Approval needed?",
    "Request approval",
    # The sample's 10 validation records, scored on the base model in one step before the swap
    "Evaluate current model",
    "Current model scored?",
    "Serve model",
]
#: The candidate, scored where it now serves (one step), then the gate (a tie: promoted).
EVALUATE_CANDIDATE = ["Evaluate candidate", "Candidate scored?"]
FAILURE_END = ["Begin clean-up", "Clean up failed run", "Clean-up settled?", "Notify failure", "Run failed"]
HAPPY_PATH = [
    *START,
    *JOB_WAIT,
    *TO_THROUGHPUT,
    *THROUGHPUT_POLL * 3,
    *EVALUATE_CANDIDATE,
    "Record served version",
    "Notify success",
    "Model in service",
]


def _report(cloud, bucket: str, run: str) -> dict:
    body = cloud.client("s3").get_object(Bucket=bucket, Key=f"reports/{run}/validation.json")["Body"].read()
    return json.loads(body)


def test_ok_run_ends_with_the_model_in_service(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "ok") as (result, cloud):
        bedrock = cloud.client("bedrock")
        state = result.final_state
        assert result.status == "SUCCEEDED"
        assert result.states == HAPPY_PATH
        assert result.polls == {"job": ["Completed"],
                                "throughput": ["Creating", "Creating", "InService"],
                                "endpoint": ["Creating", "Creating", "InService"]}  # fmt: skip

        job, pt, training = state["job"], state["endpoint"], state["training"]
        assert JOB_ARN.match(job["jobArn"])
        assert CUSTOM_MODEL_ARN.match(job["outputModelArn"])
        assert PROVISIONED_ARN.match(pt["endpointArn"])
        described = bedrock.get_provisioned_model_throughput(provisionedModelId=pt["endpointArn"])
        assert described["status"] == "InService"
        assert described["modelArn"] == job["outputModelArn"]
        assert bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])["jobArn"] == job["jobArn"]

        # The losses in the output are the last rows of the CSVs the emulated job wrote where Bedrock does.
        job_id = job["jobArn"].rsplit("/", 1)[1]
        prefix = f"outputs/{result.run}/model-customization-job-{job_id}/"
        s3 = cloud.client("s3")
        bucket = result.deployment.bucket
        key = f"{prefix}training_artifacts/step_wise_training_metrics.csv"
        rows = list(
            csv.DictReader(io.StringIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()))
        )
        assert list(rows[0]) == ["step_number", "epoch_number", "training_loss", "perplexity"]
        # 40 records, batch size 8, 2 epochs: 10 steps.
        assert [int(r["step_number"]) for r in rows] == list(range(10))
        assert float(rows[-1]["training_loss"]) == pytest.approx(training["finalTrainingLoss"])
        assert float(rows[-1]["training_loss"]) < float(rows[0]["training_loss"])
        key = f"{prefix}validation_artifacts/post_fine_tuning_validation/validation_metrics.csv"
        validation_csv = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        assert validation_csv.startswith("step_number,epoch_number,validation_loss,perplexity\n")
        assert training["finalValidationLoss"] > 0

        report = _report(cloud, bucket, result.run)
        assert report["valid"] is True
        assert report["files"]["train"]["records"] == TRAIN_RECORDS
        assert report["files"]["validation"]["records"] == VALIDATION_RECORDS
        assert state["validation"]["estimatedTokens"] > 0

        request, notice = result.notifications
        assert request["subject"] == f"[fine-tuning] {result.run}: approval needed"
        assert "ESTIMATED COST" in request["message"]
        assert notice["subject"] == f"[fine-tuning] {result.run}: model in service"
        assert pt["endpointArn"] in notice["message"]

        tags = bedrock.list_tags_for_resource(resourceARN=pt["endpointArn"])["tags"]
        tag_map = {t["key"]: t["value"] for t in tags}
        assert tag_map["finetune:run"] == result.run
        assert tag_map["finetune:stack"].startswith(f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/")


def test_the_executed_definition_is_the_templates(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "ok") as (result, cloud):
        executed = cloud.client("stepfunctions").describe_state_machine_for_execution(
            executionArn=result.execution_arn
        )["definition"]
        physical: dict[str, dict[str, str]] = {}
        for logical_id, resource in synthesized.template["Resources"].items():
            name = result.deployment.physical_ids.get(logical_id)
            if resource["Type"] == "AWS::Lambda::Function" and name:
                physical[logical_id] = {
                    "Ref": name,
                    "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
                }
        [machine] = [
            r
            for k, r in synthesized.resources_of_type("AWS::StepFunctions::StateMachine").items()
            if result.deployment.physical_ids[k] == result.deployment.state_machine_arn
        ]
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
        expected = resolve(machine["Properties"]["DefinitionString"], physical, pseudo)
        assert executed == expected


def test_invalid_data_fails_at_validation_and_starts_no_job(
    synthesized: Synthesized, invalid_run_folder: Path
) -> None:
    with run_in_emulation(synthesized, invalid_run_folder, "invalid-data") as (result, cloud):
        assert result.status == "FAILED"
        assert result.error == "DatasetInvalid"
        assert result.states == [*START[:5], "Validate dataset failed", *FAILURE_END]
        assert cloud.client("bedrock").list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
        report = _report(cloud, result.deployment.bucket, result.run)
        assert report["valid"] is False
        assert report["error_counts"]["INVALID_JSON"] == 1
        assert f"reports/{result.run}/validation.json" in str(result.cause)
        [notice] = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Validate dataset failed"
        assert "INVALID_JSON" in notice["message"]


def test_failed_job_is_reported_and_buys_no_throughput(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "job-fails") as (result, cloud):
        assert result.status == "FAILED"
        assert result.error == "CustomizationJobFailed"
        assert result.states == [*START, *JOB_WAIT, "Customization job failed", *FAILURE_END]
        assert result.polls["job"] == ["Failed"]
        assert "scenario job-fails" in str(result.cause)
        assert not result.final_state["job"].get("outputModelArn")  # no model: the wait failed
        bedrock = cloud.client("bedrock")
        assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        [notice] = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Customization job failed"
        _report(cloud, result.deployment.bucket, result.run)  # written before the job started


def test_stopped_job_is_reported(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "job-stopped") as (result, _):
        assert result.status == "FAILED"
        assert result.error == "CustomizationJobStopped"
        assert result.polls["job"] == ["Stopped"]
        assert result.states == [*START, *JOB_WAIT, "Customization job stopped", *FAILURE_END]
        assert str(result.cause).startswith(
            "Customization job stopped: The job was stopped before it completed."
        )
        assert "  " not in str(result.cause)
        [notice] = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Customization job stopped"
        assert len(result.notifications) == 1


def test_failed_throughput_is_cleaned_up_and_reported(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "throughput-fails") as (result, cloud):
        assert result.status == "FAILED"
        assert result.error == "EndpointFailed"
        assert result.states == [
            *START, *JOB_WAIT, *TO_THROUGHPUT, *THROUGHPUT_POLL * 3,
            "Endpoint failed", *FAILURE_END,
        ]  # fmt: skip
        assert result.polls["throughput"] == ["Creating", "Creating", "Failed"]
        state = result.final_state
        assert CUSTOM_MODEL_ARN.match(state["job"]["outputModelArn"])  # the custom model is kept
        assert PROVISIONED_ARN.match(state["endpoint"]["endpointArn"])
        assert state["cleanup"]["throughputDeleted"] is True
        bedrock = cloud.client("bedrock")
        assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        _, notice = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Serving failed"
        assert "insufficient capacity" in notice["message"]


def test_throttling_is_retried_by_the_state_machine(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "throttled") as (result, _):
        assert result.status == "SUCCEEDED"
        assert result.states == HAPPY_PATH
        assert result.task_failures == [("Start customization job", "BedrockTransientError")]
        assert CUSTOM_MODEL_ARN.match(result.final_state["job"]["outputModelArn"])
        assert PROVISIONED_ARN.match(result.final_state["endpoint"]["endpointArn"])
        assert [n["subject"] for n in result.notifications] == [
            f"[fine-tuning] {result.run}: approval needed",
            f"[fine-tuning] {result.run}: model in service",
        ]


def test_only_train_jsonl_starts_a_run_with_the_rules_input(
    synthesized: Synthesized, run_folder: Path
) -> None:

    cloud = LocalCloud(synthesized, scenario("ok"), clock=Clock(scale=0))
    with cloud.in_process() as deployment:
        s3, sfn = cloud.client("s3"), cloud.client("stepfunctions")
        bucket = deployment.bucket
        for key in ("datasets/orders-v1/validation.jsonl", "datasets/orders-v1/hyperparameters.json",
                    "reports/orders-v1/validation.json", "outputs/orders-v1/x/train.jsonl",
                    "datasets/train.jsonl"):  # fmt: skip
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
        assert cloud.router.deliveries == []
        assert sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"] == []

        put = s3.put_object(Bucket=bucket, Key="datasets/orders-v1/train.jsonl", Body=b"{}\n")
        [delivery] = cloud.router.deliveries
        assert delivery.rule == deployment.trigger_rule
        execution = sfn.describe_execution(executionArn=delivery.execution_arn)
        assert json.loads(execution["input"]) == {
            "bucket": bucket,
            "key": "datasets/orders-v1/train.jsonl",
            "etag": put["ETag"].strip('"'),
            "versionId": put["VersionId"],
            "sequencer": delivery.input["sequencer"],
        }
        description, _, _ = follow(cloud, str(delivery.execution_arn), io.StringIO(), cloud.clock)
        assert description["status"] == "FAILED"  # "{}" is no conversation
