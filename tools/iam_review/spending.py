"""Who can cause spending: found in the synthesized policies, by action and with the evaluator."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from iam_review.abilities import Layout
from iam_review.evaluate import Request, evaluate, matches
from iam_review.render import Renderer, readable_statement

#: Actions whose call spends money, or decides what is served (and billed) and for how long.
SPENDING_ACTIONS: dict[str, str] = {
    "bedrock:CreateModelCustomizationJob": "starts a customization job (billed for the tokens trained)",
    "bedrock:CreateProvisionedModelThroughput": (
        "buys Provisioned Throughput (billed per model unit and hour, or for the commitment term)"
    ),
    "bedrock:UpdateProvisionedModelThroughput": "changes the model a Provisioned Throughput serves",
    "bedrock:CreateCustomModelDeployment": "creates an on-demand deployment (billed per token served)",
    "bedrock:UpdateCustomModelDeployment": "changes the model an on-demand deployment serves",
    "scheduler:UpdateSchedule": "moves a serving schedule (how long a throughput stays and bills)",
    "states:StartExecution": "starts the pipeline (a run)",
}
UPLOAD_STARTS_A_RUN = (
    "starts a run: uploads datasets/<run>/train.jsonl, which the trigger turns into an execution"
)


def spending(
    renderer: Renderer,
    statements_by_principal: Mapping[str, Iterable[Any]],
    people: Mapping[str, str],
    layout: Layout | None,
) -> list[dict[str, Any]]:
    """Every principal that can cause spending: one entry per (principal, Allow statement), and one for
    each principal that can start a run by uploading ``train.jsonl``.

    ``statements_by_principal`` maps a principal to its :class:`iam_review.review.Statement` objects;
    ``people`` maps the people's policies among them to their names (``Submitter``).
    """
    found: list[dict[str, Any]] = []
    for owner, listed in statements_by_principal.items():
        statements = list(listed)
        principal = people.get(owner, owner)
        is_person = owner in people
        readable = [readable_statement(renderer, s.raw) for s in statements]
        for statement, shown in zip(statements, readable, strict=True):
            if statement.effect != "Allow":
                continue
            labels = [
                label
                for action, label in SPENDING_ACTIONS.items()
                if _grants(shown, action)
                and (action != "states:StartExecution" or _names_pipeline(shown, layout))
            ]
            if labels:
                found.append(
                    {
                        "principal": principal,
                        "person": is_person,
                        "spends": labels,
                        "resources": _resources(shown),
                        "conditions": renderer.conditions(statement.conditions),
                    }
                )
        if layout is not None:
            upload = Request("s3:PutObject", layout.objects(layout.train_key))
            key = Request("kms:GenerateDataKey", layout.key_arn, layout.via("s3"))
            if evaluate(readable, upload).allowed and evaluate(readable, key).allowed:
                granting = [s for s in readable if s["Effect"] == "Allow" and evaluate([s], upload).allowed]
                found.append(
                    {
                        "principal": principal,
                        "person": is_person,
                        "spends": [UPLOAD_STARTS_A_RUN],
                        "resources": [r for s in granting for r in _resources(s)],
                        "conditions": [c for s in granting for c in renderer.conditions(s.get("Condition"))],
                    }
                )
    return sorted(found, key=lambda e: (not e["person"], str(e["principal"])))


def _resources(statement: Mapping[str, Any]) -> list[str]:
    return list(statement.get("Resource") or [f"NOT {r}" for r in statement.get("NotResource", [])])


def _grants(statement: Mapping[str, Any], action: str) -> bool:
    """Whether the statement's Action (or NotAction) covers ``action``."""
    if "Action" in statement:
        return any(matches(a, action, ignore_case=True) for a in statement["Action"])
    return not any(matches(a, action, ignore_case=True) for a in statement.get("NotAction", []))


def _names_pipeline(statement: Mapping[str, Any], layout: Layout | None) -> bool:
    """StartExecution counts when it can start the pipeline's state machine (not CDK's helpers')."""
    if layout is None:
        return True
    if "Resource" not in statement:
        return True  # NotResource: counted, whatever it leaves out
    return any(matches(r, layout.pipeline_arn) for r in statement["Resource"])
