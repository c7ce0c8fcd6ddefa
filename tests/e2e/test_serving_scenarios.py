"""Serving a model line end to end in the emulation: on-demand deployments, a second version behind
the same endpoint, approvals rejected or expired, a throughput's time to live, a failed deployment,
and a rollback, each read from the summary document and the emulated Bedrock."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bedrock_finetune.catalog import NOVA_LITE
from finetune.local.quotas import deployment_quota_refusals
from finetune.local.runner import LocalRun, execute
from finetune.local.scenarios import scenario
from finetune.local.summary import build_summary
from finetune.local.template import Synthesized, synthesize
from tests.e2e.conftest import run_in_emulation

pytestmark = pytest.mark.e2e

NOVA_SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode-nova"
NOTHING_BILLING = {"throughputs": [], "deployments": [], "running_jobs": []}


@pytest.fixture(scope="module")
def nova(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk.out.nova-serving"), base_model_id=NOVA_LITE)


@pytest.fixture(scope="module")
def with_ttl(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk.out.ttl"), **dict(scenario("ttl-expired").context))


def run(synth: Synthesized, run_dir: Path, name: str) -> tuple[LocalRun, dict[str, Any]]:
    result = execute(synth, run_dir, scenario(name), io.StringIO(), time_scale=0)
    return result, build_summary(result)


def subjects(document: dict[str, Any]) -> list[str]:
    return [n["subject"] for n in document["notifications"]]


def test_a_nova_line_is_served_on_demand_with_nothing_billed_while_idle(nova: Synthesized) -> None:
    # Given a Nova model with serving = auto
    result, document = run(nova, NOVA_SAMPLE, "on-demand")
    # Then the run ends with a deployment ARN, no throughput and no approval asked
    assert document["execution"]["status"] == "SUCCEEDED", document["execution"]
    endpoint = document["endpoint"]
    assert endpoint["kind"] == "custom_model_deployment"
    assert ":custom-model-deployment/" in endpoint["arn"]
    assert document["created"]["throughputs"] == []
    # The line's deployment, and the candidate's temporary one (scored beside it), deleted after
    assert document["created"]["deployments"][-1] == {"arn": endpoint["arn"], "status": "Active"}
    [temporary] = document["created"]["deployments"][:-1]
    assert temporary["status"] == "Deleted" and document["evaluation"]["outcome"] == "promoted"
    assert subjects(document) == [f"[fine-tuning] {result.run}: model in service"]
    body = document["notifications"][0]["body"]
    assert "billed per token only: nothing while idle" in body
    assert endpoint["arn"] in body


def test_a_failed_deployment_fails_the_run_and_is_deleted(nova: Synthesized) -> None:
    _, document = run(nova, NOVA_SAMPLE, "deployment-fails")
    assert (document["execution"]["status"], document["execution"]["error"]) == ("FAILED", "EndpointFailed")
    # The first deployment the run makes is the candidate's, for its evaluation: it fails there
    [deployment] = document["created"]["deployments"]
    assert deployment["status"] == "Deleted"  # the clean-up deleted what this run created
    assert document["left_billing"] == NOTHING_BILLING
    [notice] = document["notifications"]
    assert "could not be created" in notice["body"]


@pytest.fixture(scope="module")
def waits_for_deployments(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Nova served on demand, deployment_quota_policy = wait (the deployment-quota scenario's context)."""
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.deployment-quota"), **dict(scenario("deployment-quota").context)
    )


def test_a_deployment_refused_for_its_quota_waits_with_a_notice_then_is_created(
    waits_for_deployments: Synthesized,
) -> None:
    # Given an account whose custom model deployments are all taken for Bedrock's first 3 answers
    with run_in_emulation(waits_for_deployments, NOVA_SAMPLE, "deployment-quota") as (result, _):
        refusals = deployment_quota_refusals(result.deployment.account, result.deployment.region)
        document = build_summary(result)
    # Then the run waited (3 refusals, 3 waits with back-off: 2, 4, 8 minutes) and was served
    assert document["execution"]["status"] == "SUCCEEDED", (
        document["execution"],
        result.states,
        result.task_failures,
    )
    assert len(refusals) == 3
    assert result.states.count("Waiting for a deployment quota") == 3
    assert result.states.count("Serve model") == 4
    assert [e for e in result.task_failures if e[0] == "Serve model"] == [
        ("Serve model", "BedrockQuotaExceeded")
    ] * 3
    assert result.final_state["deploymentQuota"]["waitedSeconds"] == 120 + 240
    assert result.final_state["deploymentQuota"]["waitSeconds"] == 480
    [deployment] = document["created"]["deployments"]
    assert deployment["status"] == "Active"
    # And the developer was told once that it waits, and why, then that the model is in service
    waiting, served = document["notifications"]
    assert waiting["subject"] == f"[fine-tuning] {result.run}: Bedrock's deployment quota is full, waiting"
    assert "ServiceQuotaExceededException" in waiting["body"]
    assert "after 6 h of waiting (max_deployment_wait_hours)" in waiting["body"]
    assert served["subject"] == f"[fine-tuning] {result.run}: model in service"


def test_a_deployment_quota_that_stays_full_fails_the_run_after_max_deployment_wait_hours_buying_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given a stack that waits at most 1 h for a deployment quota, in an account whose deployments stay taken
    synth = synthesize(
        tmp_path_factory.mktemp("cdk.out.deployment-wait"),
        **dict(scenario("deployment-quota").context),
        max_deployment_wait_hours=1,
    )
    full = replace(
        scenario("deployment-quota"), name="deployment-quota-full", deployment_quota_refusals=10**6
    )
    result = execute(synth, NOVA_SAMPLE, full, io.StringIO(), time_scale=0)
    document = build_summary(result)
    # Then after 1 h of waits (2, 4, 8, 10, 10... minutes) the run fails, saying why, and nothing was bought
    assert (document["execution"]["status"], document["execution"]["error"]) == ("FAILED", "QuotaWaitExpired")
    cause = str(document["execution"]["cause"])
    assert "waited 1 h for a quota and gave up (the maximum is 1 h); nothing was bought" in cause
    assert "max_deployment_wait_hours" in cause and "ServiceQuotaExceededException" in cause
    assert result.states.count("Waiting for a deployment quota") == 8  # 120+240+480+600*4+360 s = 1 h
    assert result.aws_seconds >= 3600
    assert document["created"]["deployments"] == []
    assert document["left_billing"] == NOTHING_BILLING
    waiting, gave_up = document["notifications"]
    assert waiting["subject"].endswith("Bedrock's deployment quota is full, waiting")
    assert gave_up["subject"] == f"[fine-tuning] {result.run}: Handle deployment quota gave up waiting"
    assert "waited 1 h for a quota and gave up" in gave_up["body"]


def test_an_evaluation_deployment_refused_for_its_quota_waits_like_the_line_s_then_scores_and_serves(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given an on-demand line that evaluates (deployment_quota_policy = wait), in an account whose
    # deployments are all taken for Bedrock's first 3 answers
    synth = synthesize(
        tmp_path_factory.mktemp("cdk.out.evaluation-quota"),
        **dict(scenario("evaluation-deployment-quota").context),
    )
    with run_in_emulation(synth, NOVA_SAMPLE, "evaluation-deployment-quota") as (result, _):
        refusals = deployment_quota_refusals(result.deployment.account, result.deployment.region)
        document = build_summary(result)
    # Then the candidate's temporary deployment waited (2, 4, 8 minutes) instead of failing the run,
    # was created, scored the candidate and was deleted; the line's deployment serves the model
    assert document["execution"]["status"] == "SUCCEEDED", (document["execution"], result.states)
    assert len(refusals) == 3
    assert result.states.count("Serve model") == 1
    assert "Waiting for a deployment quota" not in result.states
    assert result.final_state["evaluation"]["outcome"] == "promoted"
    temporary, line = document["created"]["deployments"]
    assert (temporary["status"], line["status"]) == ("Deleted", "Active")
    assert document["left_billing"]["deployments"] == [line]
    # And the developer was told once that it waits, naming the evaluation's state, then the outcome
    waiting, served = document["notifications"]
    assert waiting["subject"] == f"[fine-tuning] {result.run}: Bedrock's deployment quota is full, waiting"
    assert "the temporary deployment that scores the candidate" in waiting["body"]
    assert "'Wait for candidate deployment'" in waiting["body"]
    assert served["subject"] == f"[fine-tuning] {result.run}: model in service"


def test_an_evaluation_deployment_quota_that_stays_full_fails_the_run_after_the_limit_buying_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given an on-demand line that evaluates and waits at most 1 h for a deployment quota, in an
    # account whose deployments stay taken
    synth = synthesize(
        tmp_path_factory.mktemp("cdk.out.evaluation-quota-full"),
        **dict(scenario("evaluation-deployment-quota").context),
        max_deployment_wait_hours=1,
    )
    full = replace(
        scenario("evaluation-deployment-quota"), name="evaluation-quota-full", deployment_quota_refusals=10**6
    )
    result = execute(synth, NOVA_SAMPLE, full, io.StringIO(), time_scale=0)
    document = build_summary(result)
    # Then the evaluation gives up after 1 h of waits, the run fails through its clean-up saying why,
    # nothing was created or left billing, and the people were told it waited, then that it failed
    assert (document["execution"]["status"], document["execution"]["error"]) == ("FAILED", "QuotaWaitExpired")
    assert "waited 1 h for a quota and gave up" in str(document["execution"]["cause"])
    assert "Serve model" not in result.states
    assert result.states[-5:] == [
        "Begin clean-up", "Clean up failed run", "Clean-up settled?", "Notify failure", "Run failed",
    ]  # fmt: skip
    assert document["created"]["deployments"] == []
    assert document["left_billing"] == NOTHING_BILLING
    waiting, failed = document["notifications"]
    assert waiting["subject"].endswith("Bedrock's deployment quota is full, waiting")
    assert "Evaluate candidate" in failed["subject"]


def test_a_second_version_replaces_the_model_behind_the_same_endpoint(
    synthesized: Synthesized, run_folder: Path
) -> None:
    # Given a line served by a Provisioned Throughput, when a second version is uploaded and trained
    result, document = run(synthesized, run_folder, "second-version")
    assert document["execution"]["status"] == "SUCCEEDED"
    [second] = document["followup_runs"]
    assert second["status"] == "SUCCEEDED", second
    # Then the endpoint ARN is the same, one throughput was ever bought, and only the first asked
    assert second["endpointArn"] == document["endpoint"]["arn"]
    [throughput] = document["created"]["throughputs"]
    assert throughput == {"arn": document["endpoint"]["arn"], "status": "InService"}
    assert len(document["created"]["jobs"]) == 2
    assert subjects(document).count(f"[fine-tuning] {result.run}: approval needed") == 1
    # And the line records both versions: the second served, the first kept for rollback
    line = document["reports"][f"reports/{result.run}/line.json"]
    assert [(v["version"], v["status"]) for v in line["versions"]] == [(1, "previous"), (2, "served")]
    assert line["rollbackTo"] == 1
    assert line["versions"][0]["model"] != line["versions"][1]["model"]


def test_a_rejected_approval_buys_nothing_and_keeps_the_model(
    synthesized: Synthesized, run_folder: Path
) -> None:
    result, document = run(synthesized, run_folder, "approval-rejected")
    assert document["execution"]["status"] == "SUCCEEDED"
    assert document["created"]["throughputs"] == []
    assert document["left_billing"] == NOTHING_BILLING
    assert subjects(document) == [
        f"[fine-tuning] {result.run}: approval needed",
        f"[fine-tuning] {result.run}: model kept, not served",
    ]
    assert (
        "Why: approval rejected by finetune local (scenario approval-rejected): "
        "rejected by the scenario's user" in document["notifications"][1]["body"]
    )
    approval = document["reports"][f"reports/{result.run}/approval.json"]
    assert approval["status"] == "rejected"
    line = document["reports"][f"reports/{result.run}/line.json"]
    assert [v["status"] for v in line["versions"]] == ["kept"]
    assert line["endpoint"] is None


def test_an_unanswered_approval_expires_buys_nothing_and_says_so(
    synthesized: Synthesized, run_folder: Path
) -> None:
    result, document = run(synthesized, run_folder, "approval-expired")
    assert document["execution"]["status"] == "SUCCEEDED"
    assert "Approval expired" in result.states and "Serve model" not in result.states
    assert document["created"]["throughputs"] == []
    assert document["left_billing"] == NOTHING_BILLING
    assert "nothing was bought" in document["notifications"][-1]["body"]
    assert document["reports"][f"reports/{result.run}/approval.json"]["status"] == "expired"


def test_a_throughputs_time_to_live_reminds_then_deletes_it(with_ttl: Synthesized, run_folder: Path) -> None:
    result, document = run(with_ttl, run_folder, "ttl-expired")
    assert document["execution"]["status"] == "SUCCEEDED"
    remind, expire = (a for a in document["user_actions"] if a.startswith("schedule "))
    assert remind.endswith(": reminded") and "ttl-remind" in remind
    assert expire.endswith(": deleted") and "ttl-expire" in expire
    [throughput] = document["created"]["throughputs"]
    assert throughput["status"] == "Deleted"
    assert document["left_billing"] == NOTHING_BILLING
    assert subjects(document)[-2:] == [
        f"[fine-tuning] {result.run}: Provisioned Throughput ends at "
        + document["reports"][f"reports/{result.run}/line.json"]["ttl"],
        f"[fine-tuning] {result.run}: Provisioned Throughput deleted (time to live)",
    ]
    line = document["reports"][f"reports/{result.run}/line.json"]
    assert line["endpointDeleted"] is True and line["served"] is None
