"""Evaluation end to end on an on-demand (Nova) line: a better candidate is promoted, a worse one is
kept and the line is unchanged; either way its temporary deployment is deleted. On a provisioned
(Claude 3 Haiku) line, a worse candidate is swapped out: its first version's throughput is deleted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bedrock_finetune.catalog import NOVA_LITE
from finetune.local.bedrock import state_for
from finetune.local.cloud import LocalCloud
from finetune.local.runner import LocalRun
from finetune.local.summary import build_summary
from finetune.local.template import Synthesized, synthesize
from tests.e2e.conftest import run_in_emulation

pytestmark = pytest.mark.e2e

NOVA_SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode-nova"
SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"


@pytest.fixture(scope="module")
def nova_json(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The stack the two scenarios synthesize (their context: Nova Lite, answers checked as JSON)."""
    return synthesize(
        tmp_path_factory.mktemp("cdk.out.evaluation"), base_model_id=NOVA_LITE, evaluation_format="json"
    )


def _read(cloud: LocalCloud, result: LocalRun, name: str) -> dict[str, Any]:
    body = cloud.client("s3").get_object(Bucket=result.deployment.bucket, Key=f"reports/{result.run}/{name}")
    return dict(json.loads(body["Body"].read()))


def test_better_candidate_is_promoted_and_its_temporary_deployment_deleted(nova_json: Synthesized) -> None:
    with run_in_emulation(nova_json, NOVA_SAMPLE, "better-candidate") as (result, cloud):
        # The run served the candidate at the line's endpoint
        assert result.status == "SUCCEEDED", result.cause
        assert "Evaluate candidate" in result.states and "Candidate scored?" in result.states
        evaluation = result.final_state["evaluation"]
        assert evaluation["passed"] is True and evaluation["outcome"] == "promoted"
        assert evaluation["prompts"] == 42 and evaluation["scored"] == 84
        assert evaluation["summary"].startswith("token_f1: candidate 1.00 [1.00, 1.00] vs current 0.6")
        assert evaluation["summary"].endswith("on 42 prompts: promoted")
        line = _read(cloud, result, "line.json")
        assert line["served"]["version"] == 1
        assert line["versions"][0]["evaluation"]["outcome"] == "promoted"
        # The report has both answers per prompt, the candidate's format check, the judge-free cost
        report = _read(cloud, result, "evaluation.json")
        assert report["aggregates"]["candidate"]["format"]["mean"] == 1.0
        assert report["aggregates"]["current"]["format"]["mean"] == 0.0
        assert report["targets"]["current"]["modelId"] == "amazon.nova-lite-v1:0"
        assert report["cost"]["candidate"]["calls"] == 42 and report["cost"]["current"]["calls"] == 42
        # One deployment is left: the line's; the temporary one is deleted
        state = state_for(result.deployment.account, result.deployment.region)
        assert [d.params["modelDeploymentName"] for d in state.deployments.values()] == [
            result.final_state["endpoint"]["endpointName"]
        ]
        assert [
            d.params["modelDeploymentName"].rsplit("-", 2)[1] for d in state.deleted_deployments.values()
        ] == ["ev"]
        notice = result.notifications[-1]
        assert "Evaluation: token_f1: candidate 1.00" in notice["message"]
        assert build_summary(result)["evaluation"]["outcome"] == "promoted"


def test_worse_candidate_is_kept_and_the_line_unchanged(nova_json: Synthesized) -> None:
    with run_in_emulation(nova_json, NOVA_SAMPLE, "worse-candidate") as (result, cloud):
        assert result.status == "SUCCEEDED", result.cause
        assert "Evaluation gate not met" in result.states and "Serve model" not in result.states
        evaluation = result.final_state["evaluation"]
        assert evaluation["passed"] is False and evaluation["outcome"] == "kept"
        assert "evaluation gate: token_f1" in evaluation["why"]
        line = _read(cloud, result, "line.json")
        assert line["endpoint"] is None and line["served"] is None
        assert line["versions"][0]["status"] == "kept"
        assert line["versions"][0]["evaluation"]["outcome"] == "kept"
        state = state_for(result.deployment.account, result.deployment.region)
        assert state.deployments == {}
        assert len(state.deleted_deployments) == 1
        notice = result.notifications[-1]
        assert notice["subject"].endswith("model kept, not served")
        assert "the line is unchanged" in notice["message"]
        assert "evaluation gate: token_f1" in notice["message"]
        summary = build_summary(result)
        assert summary["evaluation"]["outcome"] == "kept"
        assert summary["left_billing"]["deployments"] == []


@pytest.fixture(scope="module")
def provisioned_json(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The default stack (Claude 3 Haiku, served by Provisioned Throughput), answers checked as JSON."""
    return synthesize(tmp_path_factory.mktemp("cdk.out.evaluation-pt"), evaluation_format="json")


def test_a_worse_candidate_on_a_provisioned_line_is_swapped_out_and_its_first_throughput_deleted(
    provisioned_json: Synthesized,
) -> None:
    # Given a provisioned line's first version whose candidate answers worse than the base model
    # (the worse-candidate scenario's emulated answers, on the default Claude 3 Haiku stack)
    with run_in_emulation(provisioned_json, SAMPLE, "worse-candidate") as (result, cloud):
        # Then the base model was scored before the throughput was bought, the candidate after it was
        # in service, and the gate kept the candidate
        assert result.status == "SUCCEEDED", result.cause
        states = result.states
        assert states.index("Evaluate current model") < states.index("Serve model")
        assert states.index("Endpoint ready?") < states.index("Evaluate candidate")
        assert states[-7:] == [
            "Evaluate candidate",
            "Candidate scored?",
            "Evaluation gate not met",
            "Not served",
            "Record kept version",
            "Notify model kept",
            "Model kept, not served",
        ]
        evaluation = _read(cloud, result, "evaluation.json")
        assert evaluation["decision"]["outcome"] == "kept"
        # And the throughput bought for this first version was deleted (nothing else serves the line)
        assert evaluation["decision"]["swapBack"].startswith("deleted arn:aws:bedrock:")
        summary = build_summary(result)
        assert summary["left_billing"] == {"throughputs": [], "deployments": [], "running_jobs": []}
        [throughput] = summary["created"]["throughputs"]
        assert throughput["status"] == "Deleted"
        line = _read(cloud, result, "line.json")
        assert line["served"] is None
        assert line["versions"][0]["status"] == "kept"
        assert result.notifications[-1]["subject"].endswith("model kept, not served")
