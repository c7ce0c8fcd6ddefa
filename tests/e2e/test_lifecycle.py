"""Issue 5 end to end: duplicates, quota errors, aborts, and clean-up, in the local emulation."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from finetune.local.cloud import LocalCloud
from finetune.local.runner import follow_delivery, publish_execution_ended, started_execution, upload_run
from finetune.local.scenarios import Scenario
from finetune.local.template import Synthesized
from finetune.local.timing import Clock
from tests.e2e.conftest import run_in_emulation
from tests.e2e.test_local_pipeline import FAILURE_END, HAPPY_PATH, JOB_WAIT, START, TO_THROUGHPUT

pytestmark = pytest.mark.e2e


def _wait_for(condition: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _ended_cleanups(cloud: LocalCloud, deployment: Any) -> list[dict[str, Any]]:
    """The executions of the clean-up machine for ended executions, once none is running."""
    sfn = cloud.client("stepfunctions")
    (machine,) = [
        m["stateMachineArn"]
        for m in sfn.list_state_machines()["stateMachines"]
        if "CleanUpMachine" in m["stateMachineArn"]
    ]

    def finished() -> list[dict[str, Any]] | None:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        return executions if executions and all(e["status"] != "RUNNING" for e in executions) else None

    return list(_wait_for(finished, "the clean-up of the ended execution"))


def test_a_duplicate_upload_event_gives_one_job_and_one_throughput(
    synthesized: Synthesized, run_folder: Path
) -> None:
    with run_in_emulation(synthesized, run_folder, "ok") as (first, cloud):
        assert first.status == "SUCCEEDED"
        # Given EventBridge delivers the same Object Created event a second time (at-least-once)
        train_event = next(
            e for e in cloud.router.events if e["detail"]["object"]["key"].endswith("/train.jsonl")
        )
        deployment = first.deployment
        cloud.router.put_event(deployment.account, deployment.region, train_event)
        duplicate = cloud.router.deliveries[-1]
        assert duplicate.execution_arn != first.execution_arn
        # When the second execution runs
        second = follow_delivery(cloud, deployment, duplicate, io.StringIO())
        # Then it reuses what the first made: one job, one throughput, the same models
        assert second.status == "SUCCEEDED"
        assert second.final_state["job"]["reused"] is True
        assert second.final_state["serving"]["action"] == "none"  # already served: nothing to ask or buy
        assert second.final_state["endpoint"]["done"] == "already"
        assert second.final_state["job"]["jobArn"] == first.final_state["job"]["jobArn"]
        assert second.final_state["endpoint"]["endpointArn"] == first.final_state["endpoint"]["endpointArn"]
        # And the line records one version for the one upload
        assert second.final_state["line"]["version"] == first.final_state["line"]["version"] == 1
        bedrock = cloud.client("bedrock")
        assert len(bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]) == 1
        summaries = bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"]
        assert len(summaries) == 1
        # And the throughput carries the lineage of the run that made it
        tags = {
            t["key"]: t["value"]
            for t in bedrock.list_tags_for_resource(resourceARN=summaries[0]["provisionedModelArn"])["tags"]
        }
        assert tags["finetune:run"] == first.run
        assert tags["finetune:execution"] == first.execution_arn
        assert tags["finetune:dataset"] == f"s3://{deployment.bucket}/datasets/{first.run}/train.jsonl"


def test_no_model_units_fails_cleanly_without_retrying_and_keeps_the_model(
    synthesized: Synthesized, run_folder: Path
) -> None:
    with run_in_emulation(synthesized, run_folder, "no-model-units") as (result, cloud):
        assert result.status == "FAILED"
        assert result.error == "BedrockQuotaExceeded"
        assert result.states == [
            *START, *JOB_WAIT, *TO_THROUGHPUT, "Serve model failed", *FAILURE_END,
        ]  # fmt: skip
        # A quota error is permanent: the task ran once, no Retry
        assert result.task_failures == [("Serve model", "BedrockQuotaExceeded")]
        assert "must be requested from AWS Support" in str(result.cause)
        assert result.final_state["job"]["outputModelArn"]  # the custom model is kept
        assert cloud.client("bedrock").list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        _, notice = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Serve model failed"
        assert "must be requested from AWS Support" in notice["message"]


def test_throttling_on_every_bedrock_call_is_recovered(synthesized: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(synthesized, run_folder, "throttled") as (result, _):
        assert result.status == "SUCCEEDED"
        assert result.states == HAPPY_PATH


def test_an_aborted_execution_stops_its_job_and_says_so(synthesized: Synthesized, run_folder: Path) -> None:
    # Given a job that keeps training
    long_job = Scenario("long-job", "The job stays InProgress until stopped.", job_hours=math.inf)
    cloud = LocalCloud(synthesized, long_job, clock=Clock(scale=0))
    with cloud.in_process() as deployment:
        upload_run(cloud, deployment, run_folder, run_folder.name)
        execution_arn = str(started_execution(cloud).execution_arn)
        bedrock, sfn = cloud.client("bedrock"), cloud.client("stepfunctions")
        jobs = _wait_for(
            lambda: bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"],
            "the job to start",
        )
        # When someone aborts the execution
        sfn.stop_execution(executionArn=execution_arn, error="Aborted", cause="stopped from the console")
        description = _wait_for(
            lambda: (d := sfn.describe_execution(executionArn=execution_arn))["status"] == "ABORTED" and d,
            "the execution to be aborted",
        )
        time.sleep(0.2)  # let the interpreter finish the state it was in
        # And AWS sends the status-change event to the OnExecutionEnded rule, which starts the clean-up
        publish_execution_ended(cloud, deployment, description)
        assert cloud.router.errors == []
        cleanups = _ended_cleanups(cloud, deployment)
        assert [c["status"] for c in cleanups] == ["SUCCEEDED"]
        # Then the job is stopped, nothing is bought, and the notification says what happened
        job = bedrock.get_model_customization_job(jobIdentifier=jobs[0]["jobArn"])
        assert job["status"] in ("Stopping", "Stopped")
        assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        [notice] = deployment.notifications()
        assert notice["subject"] == f"[fine-tuning] {run_folder.name}: Execution aborted"
        assert f"stopped customization job {jobs[0]['jobArn']}" in notice["message"]
        record = json.loads(
            cloud.client("s3")
            .get_object(Bucket=deployment.bucket, Key=f"reports/{run_folder.name}/run.json")["Body"]
            .read()
        )
        assert (record["outcome"], record["error"]) == ("failed", "ExecutionAborted")


def test_a_failed_execution_is_not_cleaned_up_twice(synthesized: Synthesized, run_folder: Path) -> None:
    # FAILED executions reach the clean-up machine too (a failure outside the chain, such as the history
    # limit, must be cleaned up), but one that ended in its own failure chain is recognised and left alone.
    with run_in_emulation(synthesized, run_folder, "job-fails") as (result, cloud):
        assert result.status == "FAILED"
        cleanups = _ended_cleanups(cloud, None)
        assert [c["status"] for c in cleanups] == ["SUCCEEDED"]
        history = cloud.client("stepfunctions").get_execution_history(
            executionArn=cleanups[0]["executionArn"]
        )
        entered = [
            e["stateEnteredEventDetails"]["name"]
            for e in history["events"]
            if "stateEnteredEventDetails" in e
        ]
        assert "Handled by the run's own failure chain" in entered
        assert len(result.notifications) == 1
        assert cloud.router.errors == []


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with a quality gate no model can meet (a second synthesis, for this module only)."""
    from finetune.local.template import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out.gated"), quality_gate_max_validation_loss="0.01")


def test_a_model_below_the_quality_gate_gets_no_throughput(gated: Synthesized, run_folder: Path) -> None:
    with run_in_emulation(gated, run_folder, "ok") as (result, cloud):
        assert result.status == "FAILED"
        assert result.error == "QualityGateNotMet"
        assert result.states == [*START, *JOB_WAIT, *TO_THROUGHPUT[:1],
                                 "Quality gate not met", *FAILURE_END]  # fmt: skip
        # Collect training results wrote its report, then failed with the gate's reason and the report
        key = f"reports/{result.run}/training.json"
        report = json.loads(
            cloud.client("s3").get_object(Bucket=result.deployment.bucket, Key=key)["Body"].read()
        )
        assert report["qualityGate"]["passed"] is False
        assert "is above the configured maximum 0.01" in report["qualityGate"]["reason"]
        assert f"The training report s3://{result.deployment.bucket}/{key} has the losses" in str(
            result.cause
        )
        # No throughput was bought; the custom model is kept for a later decision
        bedrock = cloud.client("bedrock")
        assert bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
        assert bedrock.get_custom_model(modelIdentifier=result.final_state["job"]["outputModelArn"])
        [notice] = result.notifications
        assert notice["subject"] == f"[fine-tuning] {result.run}: Quality gate not met"
