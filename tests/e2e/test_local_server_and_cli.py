"""``finetune local-server`` over HTTP on the loopback interface, and ``finetune local``'s exit codes."""

from __future__ import annotations

import io
import json
import socket
import time
from pathlib import Path

import boto3
import pytest

from finetune.local import runner
from finetune.local.scenarios import scenario
from finetune.local.server import banner, serving
from finetune.local.summary import KEYS
from finetune.local.template import Synthesized
from finetune.main import main
from tests.e2e.test_local_pipeline import HAPPY_PATH

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_upload_through_the_server_starts_a_run_that_finetune_approve_lets_buy_its_throughput(
    synthesized: Synthesized,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    out = io.StringIO()
    with serving(port, scenario("ok"), synthesized, time_scale=0, out=out) as (_, deployment):
        assert f"s3://{deployment.bucket}/datasets/" in banner(deployment, endpoint)
        client = {
            name: boto3.client(name, endpoint_url=endpoint, region_name=deployment.region,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            for name in ("s3", "stepfunctions")
        }  # fmt: skip
        for name in ("validation.jsonl", "hyperparameters.json", "train.jsonl"):
            client["s3"].put_object(
                Bucket=deployment.bucket,
                Key=f"datasets/{run_folder.name}/{name}",
                Body=(run_folder / name).read_bytes(),
            )
        sfn = client["stepfunctions"]
        # The run asks for approval before it buys the throughput: answer with the CLI, as a person would
        key = f"reports/{run_folder.name}/approval.json"
        deadline = time.time() + 60
        while time.time() < deadline:
            listed = client["s3"].list_objects_v2(Bucket=deployment.bucket, Prefix=key).get("KeyCount", 0)
            if (
                listed
                and json.loads(client["s3"].get_object(Bucket=deployment.bucket, Key=key)["Body"].read())[
                    "status"
                ]
                == "waiting"
            ):
                break
            time.sleep(0.02)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            monkeypatch.setenv(name, value)
        args = ["--endpoint-url", endpoint, "--region", deployment.region, "--stack", deployment.stack_name]
        assert main(["approve", run_folder.name, *args]) == 0
        # (the in-process handlers print their metrics to the same stdout: look for the command's line)
        printed = capsys.readouterr().out.splitlines()
        assert any(line.startswith("approved: create provisioned_throughput ") for line in printed), printed
        assert main(["approve", run_folder.name, *args]) == 1  # answered already: nothing left to answer
        assert "has no approval request waiting (status: approved)" in capsys.readouterr().err
        deadline = time.time() + 60
        while True:
            [execution] = sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"]
            if execution["status"] != "RUNNING" or time.time() > deadline:
                break
            time.sleep(0.05)
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        assert described["status"] == "SUCCEEDED"
        output = json.loads(described["output"])
        assert output["endpoint"]["status"] == "InService"
        assert [n["subject"] for n in deployment.notifications()] == [
            f"[fine-tuning] {run_folder.name}: approval needed",
            f"[fine-tuning] {run_folder.name}: model in service",
        ]
        deadline = time.time() + 10
        while "Summary" not in out.getvalue() and time.time() < deadline:
            time.sleep(0.05)
        assert "Model in service" in out.getvalue()  # the server printed the run's progress


@pytest.mark.parametrize(("scenario_name", "status"), [("ok", 0), ("job-fails", 1)])
def test_finetune_local_exit_status_says_whether_the_run_succeeded(  # noqa: PLR0917 - pytest fixtures
    synthesized: Synthesized,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    scenario_name: str,
    status: int,
) -> None:
    monkeypatch.setattr(runner, "synthesize", lambda outdir: synthesized)  # synthesized once per session
    assert main(["local", str(run_folder), "--scenario", scenario_name]) == status
    printed = capsys.readouterr().out
    assert "  Validate dataset\n" in printed
    assert "poll 1: job " in printed  # the job's status when its end woke the run
    assert f"Run:                {run_folder.name}" in printed
    assert "Notification:       [fine-tuning]" in printed


def test_finetune_local_json_prints_one_document_on_stdout_and_progress_on_stderr(
    synthesized: Synthesized,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "synthesize", lambda outdir: synthesized)
    assert main(["local", str(run_folder), "--time-scale", "0", "--json"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)  # the whole of stdout is one JSON document
    assert tuple(document) == KEYS
    assert "  Validate dataset\n" in captured.err  # progress goes to stderr
    assert "Summary" not in captured.out + captured.err
    execution = document["execution"]
    assert (execution["status"], execution["error"], execution["cause"]) == ("SUCCEEDED", None, None)
    assert execution["arn"].startswith("arn:aws:states:us-west-2:123456789012:execution:")
    assert (document["scenario"], document["run"]) == ("ok", run_folder.name)
    request, notice = document["notifications"]
    assert request["subject"] == f"[fine-tuning] {run_folder.name}: approval needed"
    assert notice["subject"] == f"[fine-tuning] {run_folder.name}: model in service"
    [throughput] = document["left_billing"]["throughputs"]
    assert throughput["status"] == "InService"
    assert throughput["arn"] in notice["body"]
    assert document["left_billing"]["deployments"] == document["left_billing"]["running_jobs"] == []
    assert document["transitions"] == len(HAPPY_PATH)  # one per state entered
    reports = document["reports"]
    assert set(reports) == {
        f"reports/{run_folder.name}/{name}"
        for name in (
            "validation.json",
            "training.json",
            "run.json",
            "line.json",
            "approval.json",
            "evaluation.json",
        )
    }
    # Every model answers the emulation's evaluation prompts alike in this scenario: a tie, promoted
    evaluation = reports[f"reports/{run_folder.name}/evaluation.json"]
    assert (evaluation["status"], evaluation["outcome"], evaluation["prompts"]) == ("done", "promoted", 10)
    assert evaluation["candidate"]["mean"] == evaluation["current"]["mean"]
    assert document["evaluation"]["outcome"] == "promoted"
    line = reports[f"reports/{run_folder.name}/line.json"]
    assert line["endpoint"] == throughput["arn"] and line["served"] == 1
    assert reports[f"reports/{run_folder.name}/approval.json"]["status"] == "approved"
    assert reports[f"reports/{run_folder.name}/validation.json"]["valid"] is True
    assert reports[f"reports/{run_folder.name}/run.json"]["outcome"] == "succeeded"
    assert reports[f"reports/{run_folder.name}/training.json"]["finalTrainingLoss"] > 0
    assert document["settled"] is True
    assert document["stack_deletion"] is None


def test_finetune_local_destroy_shows_what_teardown_deleted_and_no_throughput_left(
    synthesized: Synthesized,
    run_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "synthesize", lambda outdir: synthesized)
    assert main(["local", str(run_folder), "--time-scale", "0", "--destroy"]) == 0
    printed = capsys.readouterr().out
    assert "Stack deletion:     DELETE_COMPLETE" in printed
    assert f"Teardown:           [fine-tuning] {synthesized.stack_name} deleted" in printed
    assert "Provisioned throughputs deleted:" in printed
    assert "Throughput left:    none" in printed


def test_finetune_local_rejects_a_folder_without_train_jsonl(tmp_path: Path) -> None:
    assert main(["local", str(tmp_path)]) == 2
