"""Serving a model line end to end in the emulation: on-demand deployments, a second version behind
the same endpoint, approvals rejected or expired, a throughput's time to live, a failed deployment,
and a rollback, each read from the summary document and the emulated Bedrock."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bedrock_finetune.catalog import NOVA_LITE
from finetune.local.runner import LocalRun, execute
from finetune.local.scenarios import scenario
from finetune.local.summary import build_summary
from finetune.local.template import Synthesized, synthesize

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
