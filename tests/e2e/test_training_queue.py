"""Issue 18 end to end: many runs, an account quota of 2 concurrent jobs, and the training queue.

The emulated Bedrock (scenario ``quota-2``) refuses a third concurrent job, as the account's quota
would, and records when each job started and ended; every assertion about concurrency and order is
read from that record. The semaphore is meant to keep every run away from the quota error, so the test
also checks that Bedrock never had to refuse one.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bedrock_finetune.training_queue import list_queue
from finetune.local import bedrock
from finetune.local.cloud import Deployment, LocalCloud
from finetune.local.quotas import JobRecord, job_history, most_at_once, quota_refusals
from finetune.local.scenarios import Scenario, scenario
from finetune.local.template import Synthesized, synthesize
from finetune.local.timing import Clock
from tests.e2e.conftest import write_run

pytestmark = pytest.mark.e2e

QUOTA = 2
#: Real seconds per AWS second: a job (3 polls of 10 minutes) takes about 0.9 s, a slot check after
#: 2 minutes 0.06 s.
SCALE = 0.0005
WAITING_STATE = "Waiting for a training slot"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app with approval = never: these runs are served as soon as they pass the gate (nobody
    answers approval requests here; the queue, not serving, is what these tests watch). Jobs may run
    720 h: a run whose job trains on waits for it (a task token, timed out after max_job_hours of
    compressed time) far longer than another run's day of queue waits, Lambda overhead included."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.queue"), approval="never", max_job_hours="720")


def _until(condition: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _entered(cloud: LocalCloud, execution_arn: str, state: str) -> bool:
    events = cloud.client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)
    return any((e.get("stateEnteredEventDetails") or {}).get("name") == state for e in events["events"])


def _job_started(deployment: Deployment, run: str) -> bool:
    state = bedrock.state_for(deployment.account, deployment.region)
    return any(tags.get("finetune:run") == run for arn, tags in state.tags.items() if arn in state.jobs)


def _train_on(deployment: Deployment, run: str) -> None:
    """Take ``run``'s job off the emulation's job clock: it trains on until stopped (or described)."""
    state = bedrock.state_for(deployment.account, deployment.region)
    for arn, job in state.jobs.items():
        if state.tags.get(arn, {}).get("finetune:run") == run:
            job.train_on()


def _overtaken(history: list[JobRecord], upload_rank: dict[str, int]) -> dict[str, int]:
    """For each run, how many runs uploaded before it started their job after it did."""
    started = {r.run: r.started for r in history}
    return {
        run: sum(1 for other, at in started.items() if upload_rank[other] < upload_rank[run] and at > when)
        for run, when in started.items()
    }


def test_runs_beyond_the_job_quota_wait_their_turn_and_none_leaks_a_slot(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # Given an account that may run 2 customization jobs at once, and 23 run folders
    cloud = LocalCloud(synthesized, scenario("quota-2"), clock=Clock(scale=SCALE))
    names = [f"team-{i:02d}" for i in range(23)]
    folders = [write_run(tmp_path / name) for name in names]
    began = time.time()
    with cloud.in_process() as deployment:
        s3, sfn = cloud.client("s3"), cloud.client("stepfunctions")
        for folder in folders:
            for part in ("validation.jsonl", "hyperparameters.json"):
                s3.put_object(
                    Bucket=deployment.bucket,
                    Key=f"datasets/{folder.name}/{part}",
                    Body=(folder / part).read_bytes(),
                )
        # When the 23 train.jsonl files are uploaded within one second (their events reach EventBridge
        # after the burst, as S3 sends them asynchronously; see EventRouter.held)
        bodies = [(folder.name, (folder / "train.jsonl").read_bytes()) for folder in folders]
        with cloud.router.held():
            first_upload = time.time()
            for name, body in bodies:
                s3.put_object(Bucket=deployment.bucket, Key=f"datasets/{name}/train.jsonl", Body=body)
            assert time.time() - first_upload < 1.0
        executions = [d.execution_arn for d in cloud.router.deliveries if d.execution_arn]
        assert len(executions) == len(names)
        by_run = dict(zip(names, executions, strict=True))

        # And three runs are aborted: one while its job trains, two while they wait for a slot
        aborted = {"team-01": "training", "team-09": "waiting", "team-17": "waiting"}
        for run, when in aborted.items():
            if when == "training":
                _until(lambda r=run: _job_started(deployment, r), f"{run}'s job to start")
                _train_on(deployment, run)
            else:
                _until(lambda r=run: _entered(cloud, by_run[r], WAITING_STATE), f"{run} to wait")
            sfn.stop_execution(executionArn=by_run[run], cause=f"stopped while {when} (test)")

        # Then every execution ends, and what their ends set off (the clean-ups) settles
        def ended() -> bool:
            statuses = [sfn.describe_execution(executionArn=arn)["status"] for arn in executions]
            return all(status != "RUNNING" for status in statuses)

        _until(ended, "every run to end", timeout=100)
        assert cloud.wait_until_settled(deployment, 30) == []
        statuses = {run: sfn.describe_execution(executionArn=arn)["status"] for run, arn in by_run.items()}
        history = job_history(deployment.account, deployment.region)
        queue = list_queue(cloud.client("dynamodb"), _queue_table(cloud, deployment))
        notices = [n["subject"] for n in deployment.notifications()]
    elapsed = time.time() - began

    # The 20 runs nobody stopped succeed; the 3 stopped are aborted
    assert {run for run, status in statuses.items() if status == "SUCCEEDED"} == set(names) - set(aborted)
    assert {run: statuses[run] for run in aborted} == dict.fromkeys(aborted, "ABORTED")
    # Bedrock's record: a job for each run that got a slot, never more than 2 at once, and the
    # semaphore kept every run away from the quota error
    assert sorted(r.run for r in history) == sorted(set(names) - {"team-09", "team-17"})
    assert most_at_once(history) == QUOTA
    assert quota_refusals(deployment.account, deployment.region) == []
    # Slots in upload order: a run is never overtaken by more runs than there are other slots (two
    # runs granted together may start their jobs in either order; a later upload never jumps the line)
    rank = {name: i for i, name in enumerate(names)}
    assert max(_overtaken(history, rank).values()) <= QUOTA - 1
    # No slot leaked: every job ended (the aborted run's job was stopped), the queue is empty
    assert all(r.ended is not None for r in history)
    assert {r.run: r.status for r in history}["team-01"] == "Stopped"
    assert (queue.in_use, queue.entries) == (0, ())
    # Runs that had to wait were told so, with their place
    assert sum("waiting for a training slot (position" in s for s in notices) >= len(names) - QUOTA - 3
    # And it all ran in well under a minute
    assert elapsed < 60, f"the scale test took {elapsed:.1f} s"
    print(f"\n  23 runs, quota {QUOTA}: {elapsed:.1f} s; {len(history)} jobs")


def _queue_table(cloud: LocalCloud, deployment: Deployment) -> str:
    """The queue's table, found as the CLI finds it: the stack output."""
    stack = cloud.client("cloudformation").describe_stacks(StackName=deployment.stack_id)["Stacks"][0]
    return next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "TrainingQueueTableName")


def test_a_job_bedrock_refuses_for_its_quota_waits_with_a_notice_instead_of_failing(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # Given an account of 2 concurrent jobs where another tool already runs one
    cloud = LocalCloud(synthesized, scenario("quota-2"), clock=Clock(scale=SCALE))
    folders = [write_run(tmp_path / name) for name in ("first", "second")]
    with cloud.in_process() as deployment:
        bedrock_client, sfn = cloud.client("bedrock"), cloud.client("stepfunctions")
        bedrock_client.create_model_customization_job(
            jobName="other-tools-job",
            customModelName="other-tools-model",
            roleArn="arn:aws:iam::123456789012:role/OtherTool",
            baseModelIdentifier="anthropic.claude-3-haiku-20240307-v1:0:200k",
            trainingDataConfig={"s3Uri": "s3://other-bucket/train.jsonl"},
            outputDataConfig={"s3Uri": "s3://other-bucket/out/"},
        )
        # (it trains on: the runs must meet it running)
        bedrock.state_for(deployment.account, deployment.region).job("other-tools-job").train_on()
        # When two runs are uploaded: the queue lets both start (2 slots), Bedrock has room for one
        with cloud.router.held():
            for folder in folders:
                cloud.client("s3").put_object(
                    Bucket=deployment.bucket,
                    Key=f"datasets/{folder.name}/train.jsonl",
                    Body=(folder / "train.jsonl").read_bytes(),
                )
        executions = [d.execution_arn for d in cloud.router.deliveries if d.execution_arn]
        _until(
            lambda: all(sfn.describe_execution(executionArn=a)["status"] != "RUNNING" for a in executions),
            "both runs to end",
        )
        statuses = [sfn.describe_execution(executionArn=a)["status"] for a in executions]
        notices = deployment.notifications()
        refusals = quota_refusals(deployment.account, deployment.region)
        history = job_history(deployment.account, deployment.region)
        waited = [arn for arn in executions if _entered(cloud, arn, WAITING_STATE)]

    # Then both succeed: the refused one waited with its slot (back-off), and started once a job ended
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]
    assert len(refusals) >= 1
    assert len(waited) == 1
    [told] = [n for n in notices if "Bedrock's job quota is full" in n["subject"]]
    assert (
        "ServiceQuotaExceededException: The number of concurrent model customization jobs" in told["message"]
    )
    # And Bedrock never ran more than its quota, the other tool's job included
    assert most_at_once(history) == QUOTA


def test_local_server_honours_the_job_quota(synthesized: Synthesized, tmp_path: Path) -> None:
    import socket

    import boto3

    from finetune.local.server import serving

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    folders = [write_run(tmp_path / f"server-{i}") for i in range(4)]
    # Given the emulation served over HTTP with an account quota of 2 concurrent jobs
    with serving(port, scenario("quota-2"), synthesized, time_scale=SCALE) as (_, deployment):
        clients = {
            name: boto3.client(name, endpoint_url=f"http://127.0.0.1:{port}", region_name=deployment.region,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            for name in ("s3", "stepfunctions")
        }  # fmt: skip
        # When four runs are uploaded with the AWS CLI's calls
        for folder in folders:
            clients["s3"].put_object(
                Bucket=deployment.bucket,
                Key=f"datasets/{folder.name}/train.jsonl",
                Body=(folder / "train.jsonl").read_bytes(),
            )
        sfn = clients["stepfunctions"]

        def ended() -> list[str] | None:
            runs = sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"]
            done = [e["status"] for e in runs if e["status"] != "RUNNING"]
            return done if len(done) == len(folders) else None

        statuses = _until(ended, "the four runs to end")
        history = job_history(deployment.account, deployment.region)
    # Then all four train, never more than two at once
    assert statuses == ["SUCCEEDED"] * 4
    assert len(history) == 4
    assert most_at_once(history) == QUOTA
    assert quota_refusals(deployment.account, deployment.region) == []


def test_a_run_that_waits_longer_than_max_queue_hours_fails_saying_why_and_buys_nothing(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # Given an account of one concurrent job, taken by a run whose job trains for days
    long_jobs = Scenario("quota-1-long", "One job at a time; jobs train on.", job_quota=1, job_hours=math.inf)
    cloud = LocalCloud(synthesized, long_jobs, clock=Clock(scale=SCALE / 10))
    folders = [write_run(tmp_path / name) for name in ("trains-for-days", "waits")]
    with cloud.in_process() as deployment:
        sfn = cloud.client("stepfunctions")
        with cloud.router.held():
            for folder in folders:
                cloud.client("s3").put_object(
                    Bucket=deployment.bucket,
                    Key=f"datasets/{folder.name}/train.jsonl",
                    Body=(folder / "train.jsonl").read_bytes(),
                )
        first, second = [d.execution_arn for d in cloud.router.deliveries if d.execution_arn]
        # When the second run has waited max_queue_hours (24 h of waits) for the slot
        _until(
            lambda: sfn.describe_execution(executionArn=second)["status"] != "RUNNING",
            "the second run to end",
        )
        ended = sfn.describe_execution(executionArn=second)
        notices = [
            n for n in deployment.notifications() if n["attributes"].get("run", {}).get("Value") == "waits"
        ]
        history = job_history(deployment.account, deployment.region)
        assert sfn.describe_execution(executionArn=first)["status"] == "RUNNING"  # still training
    # Then it fails with the reason, after the notice that it started waiting, and nothing was bought
    assert ended["status"] == "FAILED"
    assert ended["error"] == "QuotaWaitExpired"
    assert "Waited 24 h for a training slot and gave up (max_queue_hours = 24 h)" in ended["cause"]
    assert "Nothing was trained or bought" in ended["cause"]
    waiting, gave_up = (n["subject"] for n in notices)
    # (position 2 when it first asked while the other run was still being validated, then 1)
    assert waiting.startswith("[fine-tuning] waits: waiting for a training slot (position ")
    assert gave_up == "[fine-tuning] waits: Take a training slot gave up waiting"
    assert [r.run for r in history] == ["trains-for-days"]


def test_finetune_runs_and_status_show_the_queued_runs_their_places_and_the_runs_ahead(
    synthesized: Synthesized, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import boto3

    from finetune.local.server import serving
    from finetune.main import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    endpoint = f"http://127.0.0.1:{port}"
    # Given an account of one concurrent job, taken by a run whose job trains on, and two runs behind it
    one_slot = Scenario(
        "quota-1-long",
        "One job at a time; jobs train on.",
        job_quota=1,
        job_hours=10**4,
        polls_per_status=10**6,
    )
    names = ["first-in", "second-in", "third-in"]
    folders = [write_run(tmp_path / name) for name in names]
    with serving(port, one_slot, synthesized, time_scale=SCALE) as (cloud, deployment):
        s3, sfn = (
            boto3.client(name, endpoint_url=endpoint, region_name=deployment.region,
                         aws_access_key_id="testing", aws_secret_access_key="testing")
            for name in ("s3", "stepfunctions")
        )  # fmt: skip
        for folder in folders:
            s3.put_object(
                Bucket=deployment.bucket,
                Key=f"datasets/{folder.name}/train.jsonl",
                Body=(folder / "train.jsonl").read_bytes(),
            )
            time.sleep(0.05)  # uploaded in this order

        def finetune(*args: str) -> tuple[int, str]:
            # The stack by its ID (any stack name would do; this one names exactly this deployment)
            where = [
                "--endpoint-url",
                endpoint,
                "--region",
                deployment.region,
                "--stack",
                deployment.stack_id,
            ]
            status = main([*args, *where])
            return status, capsys.readouterr().out

        def both_wait() -> dict[str, Any] | None:
            status, out = finetune("runs", "--json")
            listed = json.loads(out)
            rows = {r["line"]: r for r in listed["runs"]}
            places = [(rows.get(n) or {}).get("queue") or {} for n in names]
            states = [p.get("state") for p in places]
            return listed if status == 0 and states == ["training", "waiting", "waiting"] else None

        # When the two later runs wait for the slot, and the developer asks where runs are
        listed = _until(both_wait, "the two later runs to wait for the slot")
        status_code, status_out = finetune("status", "third-in", "--json")
        _, status_text = finetune("status", "third-in")
        _, runs_text = finetune("runs")
        for summary in sfn.list_executions(stateMachineArn=deployment.state_machine_arn)["executions"]:
            sfn.stop_execution(executionArn=summary["executionArn"], cause="test over")
        assert cloud.wait_until_settled(deployment, 30) == []

    # Then finetune runs --json gives each queued run its place, and the runs ahead of it
    rows = {r["line"]: r for r in listed["runs"]}
    assert rows["first-in"]["queue"] == {"state": "training", "position": None, "ahead": []}
    assert (rows["second-in"]["queue"]["position"], rows["second-in"]["queue"]["ahead"]) == (1, [])
    third = rows["third-in"]["queue"]
    assert third["position"] == 2
    assert [a["run"] for a in third["ahead"]] == ["second-in"]
    assert third["ahead"][0]["executionArn"] == rows["second-in"]["execution"]
    assert (listed["queue"]["slots"], listed["queue"]["inUse"], listed["queue"]["length"]) == (1, 1, 2)
    # And the table shows the places, with the queue under it
    table = {line.split()[0]: line for line in runs_text.splitlines()[1:] if line.startswith(tuple(names))}
    assert "#2 waiting" in table["third-in"] and "#1 waiting" in table["second-in"]
    assert "training" in table["first-in"].split()
    assert (
        "Training queue: 1 of 1 slot(s) in use; 2 run(s) in line: 1. second-in (waiting), "
        "2. third-in (waiting)"
    ) in runs_text
    # And finetune status gives the run's place, the runs ahead and the slots
    assert status_code == 0
    doc = json.loads(status_out)
    assert doc["queue"]["position"] == 2 and doc["queue"]["length"] == 2
    assert [a["run"] for a in doc["queue"]["ahead"]] == ["second-in"]
    assert (doc["queue"]["slots"], doc["queue"]["inUse"]) == (1, 1)
    assert doc["waiting_on"].startswith("a training slot")
    assert (
        "queue       waiting for a training slot: position 2 of 2; ahead: second-in; 1 of 1 slots in use"
    ) in status_text
