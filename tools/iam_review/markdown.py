"""The review as Markdown: one section per role, then resource policies, then remaining wildcards."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LEGEND = (
    "`<Name>` is a resource of this stack, named by its logical ID without CDK's hash suffix "
    "(`<BedrockServiceRole>` is that role's ARN, `arn:aws:s3:::<DataBucket>` the bucket's ARN); "
    "`${AWS::AccountId}` and `${AWS::Region}` are the deployment account and region; the partition "
    "is shown as `aws`."
)


def _cell(values: Iterable[str]) -> str:
    items = [str(v).replace("|", "\\|") for v in values]
    return "<br>".join(f"`{v}`" for v in items) if items else "none"


def _statements_table(statements: list[Mapping[str, Any]], with_principals: bool) -> list[str]:
    head = [
        "Sid",
        "Effect",
        *(["Principals"] if with_principals else []),
        "Actions",
        "Resources",
        "Conditions",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in statements:
        row = [
            str(s.get("sid", "")),
            str(s["effect"]),
            *([_cell(s.get("principals", []))] if with_principals else []),
            _cell([*s["actions"], *(f"NOT {a}" for a in s.get("not_actions", []))]),
            _cell([*s["resources"], *(f"NOT {r}" for r in s.get("not_resources", []))]),
            _cell(s["conditions"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _policy_label(kind: str) -> str:
    return "role policy" if kind == "identity" else kind


def _by_reason(wildcards: list[Mapping[str, str]]) -> dict[str, list[Mapping[str, str]]]:
    grouped: dict[str, list[Mapping[str, str]]] = {}
    for w in wildcards:
        grouped.setdefault(w["reason"], []).append(w)
    return grouped


def to_markdown(reviews: Sequence[Mapping[str, Any]]) -> str:
    """The report a reviewer reads top to bottom."""
    out = ["# IAM review", "", LEGEND, ""]
    for data in reviews:
        roles = data["roles"]
        out += [f"## Stack {data['stack']}", ""]
        if data.get("settings"):
            out += ["Synthesized with: " + "; ".join(f"{k} = `{v}`" for k, v in data["settings"].items()), ""]
        out += ["| Role | Purpose | Trusted by | Statements |", "|---|---|---|---|"]
        for role in roles:
            trusted = sorted({p for t in role["trust"] for p in t["principals"]})
            out.append(
                f"| [{role['name']}](#role-{role['name'].lower()}) | {role['purpose']} | "
                f"{_cell(trusted)} | {len(role['statements'])} |"
            )
        out.append("")
        for role in roles:
            boundary = [role["permissions_boundary"]] if role["permissions_boundary"] else []
            out += [
                f"### Role {role['name']}",
                "",
                f"- Construct: `{role['path']}`",
                f"- Purpose: {role['purpose']}",
                f"- Managed policies: {_cell(role['managed_policies'])}",
                f"- Permissions boundary: {_cell(boundary)}",
                "- Trust policy:",
            ]
            for trust in role["trust"]:
                conditions = "; ".join(f"`{c}`" for c in trust["conditions"]) or "none"
                out.append(
                    f"  - {trust['effect']} {_cell(trust['principals'])} to {_cell(trust['actions'])}; "
                    f"conditions: {conditions}"
                )
            for grant in role["granted_by_resource_policies"]:
                out.append(
                    f"- Also granted by the {grant['policy']}: {_cell(grant['actions'])} on "
                    f"{_cell(grant['resources'])}"
                )
            out += ["", *_statements_table(role["statements"], with_principals=False), ""]
        out += ["## Resource policies", ""]
        for policy in data["resource_policies"]:
            out += [
                f"### {policy['kind']}: `{policy['resource']}`",
                "",
                f"Construct: `{policy['path']}`",
                "",
                *_statements_table(policy["statements"], with_principals=True),
                "",
            ]
        out += [
            "## Remaining wildcards",
            "",
            "Every `*` left in an Allow statement, and why it stays.",
            "",
            "| Wildcards | Where | Reason |",
            "|---|---|---|",
        ]
        for reason, items in _by_reason(data["wildcards"]).items():
            where = sorted({f"`{w['where']}` ({_policy_label(w['policy'])})" for w in items})
            values = sorted({w["wildcard"] for w in items})
            out.append(f"| {_cell(values)} | {'<br>'.join(where)} | {reason} |")
        out.append("")
    return "\n".join(out)
