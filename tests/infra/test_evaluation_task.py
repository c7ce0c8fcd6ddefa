"""The evaluation in the template: where its states sit on a provisioned line (cdk.json) and an
on-demand one, and what its function may call (Converse on exactly the base and judge models and
this stack's endpoints)."""

from __future__ import annotations

import json
import tempfile
from typing import Any

import pytest

from bedrock_finetune.catalog import NOVA_LITE
from bedrock_finetune.lineage import TAG_STACK
from iam_review.render import as_list
from stacks.application import build_app, cdk_json_context
from tests.conftest import Synthesized
from tests.infra.conftest import IamSynth
from tests.infra.test_least_privilege import allowed, readable, role_named
from tests.infra.test_workflow import _pipeline_machine, _render


def _states(template_resources: dict[str, Any]) -> dict[str, Any]:
    (machine,) = (
        m
        for m in template_resources.values()
        if m["Type"] == "AWS::StepFunctions::StateMachine" and "Identify run" in json.dumps(m)
    )
    return dict(json.loads(_render(machine["Properties"]["DefinitionString"]))["States"])


def test_a_provisioned_line_scores_the_current_model_before_the_swap_and_the_candidate_after(
    synthesized: Synthesized,
) -> None:
    machine = _pipeline_machine(synthesized)
    states = json.loads(_render(machine["Properties"]["DefinitionString"]))["States"]
    approval = states["Approval needed?"]
    assert approval["Default"] == "Evaluate current model"
    assert states["Request approval"]["Next"] == "Evaluate current model"
    assert states["Evaluate current model"]["Next"] == "Current model scored?"
    [done] = states["Current model scored?"]["Choices"]
    assert (done["Variable"], done["Next"]) == ("$.evaluation.done", "Serve model")
    assert states["Current model scored?"]["Default"] == "Evaluate current model"
    ready = [c for c in states["Endpoint ready?"]["Choices"] if c.get("StringEquals") == "ready"]
    assert [c["Next"] for c in ready] == ["Evaluate candidate"]
    # The candidate's Choice is the gate too: scored and passed -> served; scored, not passed -> kept
    promoted, kept = states["Candidate scored?"]["Choices"]
    assert [c["Variable"] for c in promoted["And"]] == ["$.evaluation.done", "$.evaluation.passed"]
    assert promoted["Next"] == "Record served version"
    assert (kept["Variable"], kept["Next"]) == ("$.evaluation.done", "Evaluation gate not met")
    assert states["Candidate scored?"]["Default"] == "Evaluate candidate"
    assert states["Evaluation gate not met"]["Next"] == "Not served"
    assert "Evaluation gate passed?" not in states
    for name in ("Evaluate current model", "Evaluate candidate"):
        task = states[name]
        assert task["Retry"] and task["Catch"][-1]["ErrorEquals"] == ["States.ALL"]
        assert task["TimeoutSeconds"] == 900


@pytest.fixture(scope="module")
def on_demand_states() -> dict[str, Any]:
    context = cdk_json_context(base_model_id=NOVA_LITE)
    _, stack, _ = build_app(context, environment={}, outdir=tempfile.mkdtemp(prefix="cdk.out.eval-"))
    from aws_cdk.assertions import Template

    return _states(Template.from_stack(stack).to_json()["Resources"])


def test_an_on_demand_line_scores_the_candidate_on_its_own_deployment_before_serving(
    on_demand_states: dict[str, Any],
) -> None:
    states = on_demand_states
    assert states["Plan serving"]["Next"] == "Evaluate candidate"
    scored = states["Candidate scored?"]
    assert [(c.get("Variable"), c["Next"]) for c in scored["Choices"]] == [
        (None, "Approval needed?"),  # done and passed (an And)
        ("$.evaluation.done", "Evaluation gate not met"),
        ("$.evaluation.waiting", "Wait for candidate deployment"),
    ]
    assert states["Wait for candidate deployment"]["Next"] == "Evaluate candidate"
    assert "Evaluate current model" not in states


def test_evaluation_off_leaves_the_serving_path_as_it_was() -> None:
    context = cdk_json_context(evaluation=False)
    _, stack, _ = build_app(context, environment={}, outdir=tempfile.mkdtemp(prefix="cdk.out.eval-"))
    from aws_cdk.assertions import Template

    states = _states(Template.from_stack(stack).to_json()["Resources"])
    assert not [name for name in states if "valuat" in name]
    assert states["Approval needed?"]["Default"] == "Serve model"


def test_converse_only_on_the_base_model_and_this_stacks_endpoints(default_synth: IamSynth) -> None:
    template = default_synth.template
    role = role_named(template, handler="handlers.evaluate_candidate.handler")
    invoke = [s for s in allowed(template) if s.owner == role and "bedrock:InvokeModel" in s.actions]
    resources = {readable(template, r): s for s in invoke for r in s.resources}
    base = cdk_json_context()["base_model_id"].rsplit(":", 1)[0]
    assert set(resources) == {
        f"arn:aws:bedrock:us-west-2::foundation-model/{base}",
        "arn:aws:bedrock:us-west-2:${AWS::AccountId}:provisioned-model/*",
        "arn:aws:bedrock:us-west-2:${AWS::AccountId}:custom-model-deployment/*",
    }
    for resource, statement in resources.items():
        if "foundation-model" not in resource:
            assert f"aws:ResourceTag/{TAG_STACK}" in statement.conditions["StringEquals"], resource
    # Only this stack's endpoints may be created, changed or deleted, and only tagged ones
    for action in ("bedrock:DeleteCustomModelDeployment", "bedrock:UpdateProvisionedModelThroughput"):
        [statement] = [
            s
            for s in allowed(template)
            if s.owner == role and action in s.actions and "custom-model/" not in str(s.raw)
        ]
        assert f"aws:ResourceTag/{TAG_STACK}" in statement.conditions["StringEquals"]
    mine = [s for s in allowed(template) if s.owner == role]
    reads = {readable(template, r) for s in mine if "s3:GetObject" in s.actions for r in as_list(s.resources)}
    assert reads == {
        "arn:aws:s3:::<DataBucket>/datasets/*/evaluation.jsonl",
        "arn:aws:s3:::<DataBucket>/datasets/*/validation.jsonl",
        "arn:aws:s3:::<DataBucket>/reports/*/evaluation.json",
    }
