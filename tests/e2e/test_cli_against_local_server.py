"""The developer's loop, end to end, against ``finetune local-server``: one server for the module.

submit -> runs -> status --json -> report --plot -> invoke -> logs, each through ``finetune.main``
exactly as typed, with ``--endpoint-url`` pointing at the emulation on a free port.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from finetune import curves, submit_cmd
from finetune.local.scenarios import scenario
from finetune.local.server import serving
from finetune.local.template import Synthesized
from finetune.main import build_parser, main
from finetune.output import run_command
from tests.e2e.conftest import write_run

pytestmark = pytest.mark.e2e

RUN = "orders-cli"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(synthesized: Synthesized) -> Iterator[dict[str, Any]]:
    """The emulation served on a free port, with the stack deployed; waits compressed to nothing."""
    port = _free_port()
    with serving(port, scenario("ok"), synthesized, time_scale=0) as (_, deployment):
        yield {"endpoint": f"http://127.0.0.1:{port}", "deployment": deployment}


def finetune(server: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``finetune ARGS --endpoint-url <server>``; returns (exit status, stdout, stderr)."""
    status = main([*args, "--endpoint-url", server["endpoint"], "--region", "us-west-2"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def document(out: str, command: str) -> dict[str, Any]:
    parsed = json.loads(out)  # the whole of stdout is one document
    assert (parsed["schema_version"], parsed["command"]) == (1, command)
    return dict(parsed)


@pytest.fixture(scope="module")
def submitted(server: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run submitted and followed to its end with ``submit --wait --json``."""
    folder = write_run(tmp_path_factory.mktemp("runs") / RUN)
    (folder / "evaluation.jsonl").write_text('{"prompt": "Order 1: 2 crates to Lisbon."}\n')
    where = ["--endpoint-url", server["endpoint"], "--region", "us-west-2"]
    args = build_parser("submit").parse_args(
        ["submit", str(folder), "--wait", "--interval", "0.05", "--json", *where]
    )
    # The command's own output stream: this fixture outlives any test's capture of sys.stdout.
    out = io.StringIO()
    results: dict[str, Any] = {}
    follower = threading.Thread(
        target=lambda: results.update(status=run_command("submit", submit_cmd.submit, args, out))
    )
    follower.start()
    # While submit --wait follows the run, a person approves the throughput it asks to buy
    approve_out = io.StringIO()
    approved = _approve_when_asked(server, where, approve_out)
    follower.join(timeout=120)
    return {
        "status": results.get("status"),
        "document": json.loads(out.getvalue()),
        "folder": folder,
        "approved": approved,
        "approve_output": approve_out.getvalue(),
    }


def _approve_when_asked(server: dict[str, Any], where: list[str], out: io.StringIO) -> int:
    """``finetune approve RUN`` as soon as the run's approval request is waiting; its exit status."""
    s3 = boto3.client(
        "s3", endpoint_url=server["endpoint"], region_name="us-west-2",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    bucket, key = server["deployment"].bucket, f"reports/{RUN}/approval.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount")
        if listed and json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["status"] == "waiting":
            break
        time.sleep(0.02)
    with contextlib.redirect_stdout(out):
        return main(["approve", RUN, *where])


def test_submit_validates_uploads_train_last_and_follows_the_run_to_its_end(
    server: dict[str, Any], submitted: dict[str, Any]
) -> None:
    doc = submitted["document"]
    assert submitted["status"] == 0
    assert (doc["schema_version"], doc["command"], doc["run"], doc["valid"], doc["version"]) == (
        1, "submit", RUN, True, 1,
    )  # fmt: skip
    assert doc["uploaded"] == [
        f"datasets/{RUN}/{name}"
        for name in ("validation.jsonl", "hyperparameters.json", "evaluation.jsonl", "train.jsonl")
    ]
    assert doc["execution"].startswith("arn:aws:states:us-west-2:123456789012:execution:")
    # And the approval it waited for was given with finetune approve, which said what it bought
    assert submitted["approved"] == 0
    assert submitted["approve_output"].startswith("approved: create provisioned_throughput ")
    final = doc["status"]
    assert final["execution"]["status"] == "SUCCEEDED"
    assert final["step"] == "Model in service"
    assert final["waiting_on"] == "nothing: the run has ended (SUCCEEDED)"


def test_submit_refuses_invalid_data_with_the_validators_report_and_uploads_nothing(
    server: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a run folder whose training file has a record with a bad role
    folder = write_run(tmp_path / "bad-roles")
    lines = (folder / "train.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"role": "user"', '"role": "bot"')
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    # When it is submitted
    status, out, _ = finetune(server, capsys, "submit", str(folder))
    # Then it is refused with the report finetune validate prints, and nothing reached the bucket
    assert status == 1
    assert out.startswith("INVALID: ")
    assert f"{folder / 'train.jsonl'}:3  INVALID_ROLE" in out
    assert "Nothing was uploaded" in out
    s3 = boto3.client("s3", endpoint_url=server["endpoint"], region_name="us-west-2")
    listed = s3.list_objects_v2(Bucket=server["deployment"].bucket, Prefix="datasets/bad-roles/")
    assert listed.get("KeyCount", 0) == 0


def test_runs_lists_the_run_with_its_version_model_and_endpoint(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = finetune(server, capsys, "runs", "--json")
    assert status == 0
    [row] = [r for r in document(out, "runs")["runs"] if r["line"] == RUN]
    assert (row["version"], row["status"], row["step"]) == (1, "SUCCEEDED", "Model in service")
    assert ":custom-model/" in row["model"] and ":provisioned-model/" in row["endpoint"]
    status, out, _ = finetune(server, capsys, "runs")
    assert status == 0
    assert out.splitlines()[0].split() == [
        "LINE",
        "VERSION",
        "STATUS",
        "STEP",
        "QUEUE",
        "STARTED",
        "MODEL",
        "ENDPOINT",
    ]
    [line] = [line for line in out.splitlines() if line.startswith(RUN)]
    assert line.split()[:6] == [RUN, "v1", "SUCCEEDED", "Model", "in", "service"]


def test_status_json_gives_step_job_training_progress_and_who_it_waits_for(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = finetune(server, capsys, "status", RUN, "--json")
    assert status == 0
    doc = document(out, "status")
    assert doc["execution"]["arn"] == submitted["document"]["execution"]
    assert (doc["run"], doc["version"], doc["step"]) == (RUN, 1, "Model in service")
    assert doc["job"]["status"] == "Completed"
    # 40 records in batches of 8 for 2 epochs: 10 steps, all written by the (emulated) job
    assert doc["training"]["steps_done"] == doc["training"]["expected_steps"] == 10
    assert doc["training"]["epochs_seen"] == doc["training"]["expected_epochs"] == 2
    assert doc["training"]["last_validation_loss"] > doc["training"]["last_training_loss"] > 0
    assert doc["throughput"]["status"] == "InService"
    assert doc["endpoint"] == doc["throughput"]["arn"]
    assert doc["cost"]["estimated_billable_tokens"] > 0
    status, out, _ = finetune(server, capsys, "status", RUN)
    assert status == 0
    assert "training    step 10/10, epoch 2/2;" in out


def test_status_follow_on_an_ended_run_prints_the_final_state_and_its_outcome(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = finetune(server, capsys, "status", RUN, "--follow", "--interval", "0.05")
    assert status == 0  # the run succeeded
    lines = out.splitlines()
    assert lines[0].endswith("  Model in service  (job Completed, throughput InService)")  # one progress line
    assert f"Run {RUN} v1: SUCCEEDED, step Model in service" in out
    assert "waiting on  nothing: the run has ended (SUCCEEDED)" in out


def test_report_plots_the_curves_it_read(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # When the report is asked for, with a plot
    plot = tmp_path / "loss.png"
    status, out, _ = finetune(server, capsys, "report", RUN, "--plot", str(plot), "--json")
    assert status == 0
    doc = document(out, "report")
    # Then the PNG decodes to the figure's size
    with Image.open(plot) as image:
        assert (image.format, image.size) == ("PNG", (800, 450))
    # and holds the curves the report read from Bedrock's CSVs: 10 training steps, 2 validation points
    training, validation = doc["curves"]["training"], doc["curves"]["validation"]
    assert [step for step, _, _ in training] == list(range(10))
    assert [(step, epoch) for step, epoch, _ in validation] == [(4, 0), (9, 1)]
    job = doc["job"]
    s3 = boto3.client("s3", endpoint_url=server["endpoint"], region_name="us-west-2")
    read = curves.read_curves(s3, server["deployment"].bucket, f"outputs/{RUN}/", job)
    [axes] = curves.build_figure(read, RUN).axes
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert list(lines["training loss"].get_ydata()) == [loss for _, _, loss in training]
    assert list(lines["validation loss"].get_xdata()) == [4, 9]
    assert [t.get_text() for t in axes.texts] == ["epoch 2"]
    # and the reports are there, summarized in the text form
    assert doc["reports"]["run.json"]["outcome"] == "succeeded"
    status, out, _ = finetune(server, capsys, "report", RUN)
    assert "valid; records: train 40, validation 10; errors: none; warnings: none" in out
    assert "quality gate: passed" in out
    assert "outcome: succeeded" in out
    # and the evaluation, which had nothing to score: the run's one evaluation prompt has no reference
    evaluation = doc["evaluation"]
    assert (evaluation["status"], evaluation["prompts"]) == ("not evaluated", 0)
    assert "not evaluated: no prompt has a reference answer to score against" in out


def test_invoke_calls_the_runs_endpoint_and_prints_the_answer_with_token_counts(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = finetune(server, capsys, "invoke", RUN, "Order 7: 3 crates to Osaka.", "--json")
    assert status == 0
    doc = document(out, "invoke")
    assert doc["endpoint_from"] == f"reports/{RUN}/line.json"  # the line's one endpoint
    [answer] = doc["answers"]
    assert answer["answer"].startswith("[synthetic answer from the local emulation; no model ran]")
    assert answer["input_tokens"] > 0 and answer["output_tokens"] > 0
    # A batch from a file, as text
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"Order 1."\n{"prompt": "Order 2.", "system": "Reply with JSON."}\n')
    status, out, _ = finetune(server, capsys, "invoke", RUN, "--file", str(prompts))
    assert status == 0
    assert out.count("[tokens: input ") == 2
    assert "> Order 2." in out


def test_invoke_without_an_endpoint_fails_saying_why(
    server: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = finetune(server, capsys, "invoke", "no-such-run", "hello")
    assert status == 1
    assert "run no-such-run has no endpoint" in err


def test_logs_prints_the_runs_handler_lines_in_order(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = finetune(server, capsys, "logs", RUN, "--json")
    assert status == 0
    events = document(out, "logs")["events"]
    execution_name = submitted["document"]["execution"].rsplit(":", 1)[1]
    assert {e["correlation_id"] for e in events} == {execution_name}  # this run's lines only
    assert {e["log_group"] for e in events} <= set(server["deployment"].physical_ids.values())
    times = [e["time"] for e in events]
    assert times == sorted(times)
    messages = [e["message"] for e in events]
    # the run joins the training queue first (before it settles), then its data is validated
    assert messages[0] == "training queue: join" and messages[-1] == "notification published"
    assert messages.index("dataset valid") < messages.index("customization job")
    assert "customization job" in messages and "endpoint status" in messages
    status, out, _ = finetune(server, capsys, "logs", RUN)
    assert f"execution {execution_name} (SUCCEEDED)" in out.splitlines()[0]
    assert "ValidateDataset" in out


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["status", RUN, "--stack", "NoSuchStack"], 1, "stack NoSuchStack does not exist in us-west-2"),
        (["status", "never-submitted"], 1, "no run 'never-submitted'"),
        (["report", RUN, "--plot", "loss.gif"], 2, "--plot loss.gif: the figure is written as .png or .svg"),
        (["invoke", RUN], 2, "give either PROMPT or --file PROMPTS.jsonl"),
    ],
)
def test_errors_say_what_to_do_with_the_documented_exit_status(
    server: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], status: int, message: str
) -> None:
    got, _, err = finetune(server, capsys, *args)
    assert got == status
    assert message in err


def test_json_errors_are_one_document_too(server: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = finetune(server, capsys, "runs", "--stack", "NoSuchStack", "--json")
    assert status == 1
    error = document(out, "runs")["error"]
    assert error["exit_status"] == 1 and "make deploy" in error["message"]


def test_a_deleted_folder_is_nothing_to_submit(
    server: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = write_run(tmp_path / "gone")
    shutil.rmtree(folder)
    status, _, err = finetune(server, capsys, "submit", str(folder))
    assert status == 2 and "is not a folder" in err


def test_a_second_version_keeps_the_endpoint_and_rollback_puts_the_first_model_back(
    server: dict[str, Any], submitted: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The loop's end: a second version of the line (no approval: swapping the model buys nothing),
    then ``finetune rollback``, which puts version 1 back behind the same ARN."""
    # Given the line served by the first run, when a second version is submitted and followed
    folder = submitted["folder"]
    records = (folder / "train.jsonl").read_text().splitlines()
    (folder / "train.jsonl").write_text("\n".join(reversed(records)) + "\n")
    status, out, _ = finetune(server, capsys, "submit", str(folder), "--wait", "--interval", "0.05", "--json")
    assert status == 0, out
    # The in-process handlers print their metrics (EMF) to the same stdout: read the command's document
    assert document(_command_document(out), "submit")["status"]["step"] == "Model in service"
    # Then rollback puts version 1's model back behind the same endpoint, and says so
    status, out, err = finetune(server, capsys, "rollback", RUN, "--json")
    assert status == 0, err
    result = document_any(_command_document(out))["result"]
    assert (result["from"], result["to"]) == (2, 1)
    line = submitted_line(server)
    assert line["endpoint"]["arn"] == result["endpointArn"]
    assert [(v["version"], v["status"]) for v in line["versions"]] == [(1, "served"), (2, "previous")]


def _command_document(out: str) -> str:
    """The one JSON document of the command in ``out``, past the handlers' EMF lines (``_aws``)."""
    decoder, position, found = json.JSONDecoder(), 0, ""
    while position < len(out):
        while position < len(out) and out[position].isspace():
            position += 1
        if position >= len(out):
            break
        value, end = decoder.raw_decode(out, position)
        if "_aws" not in value:
            found = out[position:end]
        position = end
    return found


def document_any(out: str) -> dict[str, Any]:
    parsed = json.loads(out)
    assert parsed["schema_version"] == 1 and parsed["ok"] is True
    return dict(parsed)


def submitted_line(server: dict[str, Any]) -> dict[str, Any]:
    s3 = boto3.client(
        "s3", endpoint_url=server["endpoint"], region_name="us-west-2",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    body = s3.get_object(Bucket=server["deployment"].bucket, Key=f"reports/{RUN}/line.json")["Body"].read()
    return dict(json.loads(body))
