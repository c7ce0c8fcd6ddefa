"""Issue 15 end to end: the run waits for its job without polling. The job's end event wakes it (an
8-hour job: a constant, small number of transitions, noticed at once), a lost event is made up for by
the fallback check, and an abort while waiting stops the job and leaves nothing behind."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest

from finetune.local.cloud import LocalCloud
from finetune.local.runner import follow_delivery, started_execution, upload_run
from finetune.local.scenarios import scenario
from finetune.local.summary import build_summary
from finetune.local.template import Synthesized
from finetune.local.timing import DEFAULT_SCALE, Clock
from stacks.application import cdk_json_context
from stacks.config import load_config
from tests.e2e.test_local_pipeline import HAPPY_PATH, JOB_WAIT

pytestmark = pytest.mark.e2e

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"
NOTHING_BILLING = {"throughputs": [], "deployments": [], "running_jobs": []}


def _run(
    synthesized: Synthesized, run_folder: Path, name: str
) -> tuple[dict[str, Any], list[str], LocalCloud]:
    """The scenario at the default time scale (emulated hours take real fractions of a second, so
    the order of the job's end and the run's wake is the emulated one): the --json document, the
    states, and the emulation (closed)."""
    cloud = LocalCloud(synthesized, scenario(name), clock=Clock(scale=DEFAULT_SCALE))
    with cloud.in_process() as deployment:
        upload_run(cloud, deployment, run_folder, run_folder.name)
        result = follow_delivery(cloud, deployment, started_execution(cloud), io.StringIO())
        waiting = cloud.client("s3").list_objects_v2(Bucket=deployment.bucket, Prefix="reports/_waiting/")
        assert waiting.get("KeyCount", 0) == 0  # every waiting record was dropped
    return build_summary(result), result.states, cloud


def test_an_eight_hour_job_costs_a_constant_few_transitions_and_is_noticed_within_a_minute(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # Given the json-mode sample (what `finetune local datasets/json-mode --scenario eight-hour-job`
    # runs: its 42 validation records are the evaluation's prompts), whose job trains for 8 emulated hours
    sample = shutil.copytree(SAMPLE, tmp_path / SAMPLE.name)
    document, states, cloud = _run(synthesized, sample, "eight-hour-job")
    # Then the whole run (validation, approval, evaluation, serving, notification) enters at most 30
    # states, the same as a job of minutes (HAPPY_PATH), the job's wait one of them
    assert document["execution"]["status"] == "SUCCEEDED"
    assert document["transitions"] == len(states) == len(HAPPY_PATH) <= 30
    assert states == HAPPY_PATH
    assert states.count(JOB_WAIT[0]) == 1
    # And the run woke from the job's state-change event, within a minute of the job's end
    wait = document["job_wait"]
    assert wait["woken_by"] == "job state-change event"
    assert wait["job_ended_aws_seconds"] >= 8 * 3600
    assert 0 <= wait["noticed_after_seconds"] <= 60
    assert document["left_billing"]["running_jobs"] == []
    assert cloud.router.errors == []


def test_a_lost_job_event_is_made_up_for_by_the_fallback_check(
    synthesized: Synthesized, run_folder: Path
) -> None:
    # Given a job whose state-change events are lost (they are best effort)
    document, states, _ = _run(synthesized, run_folder, "job-event-lost")
    # Then the fallback check woke the run at its next tick (every job_poll_seconds) after the end
    wait = document["job_wait"]
    assert wait["woken_by"] == "fallback check"
    poll = load_config(cdk_json_context()).job_poll_seconds
    assert 0 < wait["noticed_after_seconds"] <= poll
    # And the run went on as usual, with the same few transitions
    assert document["execution"]["status"] == "SUCCEEDED"
    assert states == HAPPY_PATH


def test_an_abort_while_waiting_for_the_job_stops_it_and_leaves_nothing_behind(
    synthesized: Synthesized, run_folder: Path
) -> None:
    # Given a run stopped (StopExecution) while it waits for its 8-hour job
    document, states, _ = _run(synthesized, run_folder, "abort-while-training")
    assert document["execution"]["status"] == "ABORTED"
    assert states[-1] == JOB_WAIT[0]
    assert document["user_actions"] == ["StopExecution while waiting for the job to end (job InProgress)"]
    # Then the ended execution's clean-up stopped the job and gave the slot back: nothing is billing
    ([job],) = [document["created"]["jobs"]]
    assert job["status"] == "Stopped"
    assert document["left_billing"] == NOTHING_BILLING
    [notice] = document["notifications"]
    assert f"stopped customization job {job['arn']}" in notice["body"]
    assert "gave back its training slot" in notice["body"]
    # And the job's Stopped event found the dead token and ignored it (no failed delivery)
    assert document["delivery_errors"] == []
    assert [e["status"] for e in document["other_executions"]] == ["SUCCEEDED"]
