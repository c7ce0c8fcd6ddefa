"""Issue 11 end to end: an abort while the throughput is Creating, a second upload while the run
settles, a transient SNS failure. Each runs the scenario of the same name and checks the
``finetune local --json`` document (through the CLI, or built from the runner's result when the
test must also look into the emulation afterwards).

These tests state what the pipeline must do; they fail on a runtime that does not do it yet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from finetune.local import runner
from finetune.local.summary import build_summary
from finetune.local.template import Synthesized
from finetune.main import main
from tests.e2e.conftest import run_in_emulation

pytestmark = pytest.mark.e2e

NOTHING_BILLING = {"throughputs": [], "deployments": [], "running_jobs": []}


def local_json(
    synthesized: Synthesized,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, dict[str, Any]]:
    """``finetune local ARGS --time-scale 0 --json``: its exit status and its one JSON document."""
    monkeypatch.setattr(runner, "synthesize", lambda outdir: synthesized)  # synthesized once per session
    status = main(["local", *args, "--time-scale", "0", "--json"])
    document = json.loads(capsys.readouterr().out)  # stdout holds the document and nothing else
    return status, document


def _says_deleted(body: str, arn: str) -> bool:
    """Whether a line of ``body`` says that ``arn`` was deleted (not that it could not be)."""
    for line in body.splitlines():
        text = line.lower()
        if (
            arn in line
            and "deleted" in text
            and not re.search(r"\b(not|cannot|can't|yet|still|until)\b", text)
        ):
            return True
    return False


def test_an_abort_while_the_throughput_is_creating_leaves_nothing_billing_and_says_what_was_deleted(
    synthesized: Synthesized,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the user stops the execution at the first throughput poll, while the throughput is Creating
    # (it stays Creating for 5 more polls, and Bedrock refuses to delete a Creating throughput)
    status, document = local_json(
        synthesized, monkeypatch, capsys, str(run_folder), "--scenario", "abort-during-throughput"
    )
    approved, stopped = document["user_actions"]
    assert approved.startswith("approval approved (create provisioned_throughput ")
    assert stopped == "StopExecution at throughput poll 1 (Creating)"
    assert (status, document["execution"]["status"]) == (1, "ABORTED")
    [throughput] = document["created"]["throughputs"]
    arn = throughput["arn"]
    # Then, once everything the abort set off has settled, nothing is left billing
    assert document["settled"] is True
    assert document["left_billing"] == NOTHING_BILLING, (
        f"left billing after the abort: {document['left_billing']}; "
        f"failed event deliveries: {document['delivery_errors']}; "
        f"notifications: {[n['subject'] for n in document['notifications']]}"
    )
    assert throughput["status"] == "Deleted"
    # And a notification says that the throughput was deleted, by its ARN
    assert any(_says_deleted(n["body"], arn) for n in document["notifications"]), document["notifications"]
    assert any("aborted" in n["subject"].lower() for n in document["notifications"])


def test_a_second_upload_while_the_run_settles_does_not_change_what_the_first_run_trains(
    synthesized: Synthesized, run_folder: Path
) -> None:
    first_version = (run_folder / "train.jsonl").read_bytes()
    first_validation = (run_folder / "validation.jsonl").read_bytes()
    with run_in_emulation(synthesized, run_folder, "reupload-during-settle") as (result, cloud):
        document = build_summary(result)
        s3, bedrock = cloud.client("s3"), cloud.client("bedrock")
        bucket = result.deployment.bucket
        # Given a second, different and valid version of train.jsonl arrived while the run settled
        [upload] = [a for a in document["user_actions"] if a.startswith("uploaded")]
        assert upload.startswith(f"uploaded a second version of datasets/{result.run}/train.jsonl")
        current = s3.get_object(Bucket=bucket, Key=f"datasets/{result.run}/train.jsonl")["Body"].read()
        assert current != first_version
        assert sorted(current.splitlines()) == sorted(first_version.splitlines())
        # And it started a second run, followed to its end too
        [second] = document["other_executions"]
        assert second["stateMachine"] == result.deployment.state_machine_arn
        assert (document["execution"]["status"], second["status"]) == ("SUCCEEDED", "SUCCEEDED"), (
            cloud.client("stepfunctions").describe_execution(executionArn=second["arn"]).get("cause")
        )
        assert document["reports"][f"reports/{result.run}/validation.json"]["valid"] is True
        # Then the first run's job trains exactly the bytes that run validated: read the object at
        # the URI the job recorded (Bedrock URIs carry no version: the current object is what trains)
        job = bedrock.get_model_customization_job(jobIdentifier=result.final_state["job"]["jobArn"])
        trained_uri = job["trainingDataConfig"]["s3Uri"]
        trained_bucket, trained_key = trained_uri.removeprefix("s3://").split("/", 1)
        trained = s3.get_object(Bucket=trained_bucket, Key=trained_key)["Body"].read()
        assert trained == first_version, (
            f"the first run's job trains {trained_uri}, which holds the second upload, not the version "
            "the run validated"
        )
        [validator] = job["validationDataConfig"]["validators"]
        validation_bucket, validation_key = validator["s3Uri"].removeprefix("s3://").split("/", 1)
        assert s3.get_object(Bucket=validation_bucket, Key=validation_key)["Body"].read() == first_validation
        # And the two runs made two jobs
        assert len(document["created"]["jobs"]) == 2


def test_a_transient_sns_failure_still_delivers_the_success_notification(
    synthesized: Synthesized, run_folder: Path
) -> None:
    with run_in_emulation(synthesized, run_folder, "notify-transient-failure") as (result, cloud):
        document = build_summary(result)
        request = f"[fine-tuning] {result.run}: approval needed"
        success = f"[fine-tuning] {result.run}: model in service"
        # Given SNS answered InternalError (HTTP 500) to the first Publish call (the approval request),
        # every retry of that call included
        failed = cloud.publish_failures.failed
        assert failed
        assert {(code, subject) for code, _, subject in failed} == {("InternalError", request)}
        # Then the state machine asks again, the request arrives and is answered, the run succeeds,
        # and each notification is delivered once
        assert document["execution"]["status"] == "SUCCEEDED", document["execution"]
        assert [n["subject"] for n in document["notifications"]] == [request, success]
        [throughput] = document["left_billing"]["throughputs"]
        assert throughput["status"] == "InService"
        assert throughput["arn"] in document["notifications"][1]["body"]
