"""The review as Markdown: the one-page summary, then one section per role, the people's policies, the
grants a configured key needs, the resource policies and the remaining wildcards."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iam_review.summary import summary_lines

#: The heading the detail starts with (everything above it is the summary page).
DETAIL_HEADING = "## Roles"

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


def _people(people: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [
        "## People",
        "",
        "Customer-managed policies for the people who use the stack; attach each to the users, groups or "
        "roles that do that job. What each allows is decided by the same policy evaluation the tests use.",
        "",
    ]
    if people and people[0]["abilities"]:
        names = [p["name"] for p in people]
        out += ["| Can they... | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for ability in people[0]["abilities"]:
            marks = ["yes" if p["abilities"][ability] else "no" for p in people]
            out.append(f"| {ability} | " + " | ".join(marks) + " |")
        out.append("")
    for person in people:
        out += [
            f"### {person['name']}",
            "",
            f"- Construct: `{person['path']}`",
            f"- Stack output: `{person['output']}`",
            f"- Purpose: {person['description']}",
            "",
            *_statements_table(person["statements"], with_principals=False),
            "",
        ]
    return out


def _key_grants(grants: Sequence[Mapping[str, Any]]) -> list[str]:
    out = [
        "## Key grants",
        "",
        "The key is configured (`kms_key_arn`), so the stack cannot change its policy. The key policy must "
        "allow CloudWatch Logs below, and let this account's IAM policies grant use of the key (the "
        "principals below use it through their own statements), or name each of them.",
        "",
        "| Principal | Actions | Conditions |",
        "|---|---|---|",
    ]
    for grant in grants:
        out.append(f"| `{grant['principal']}` | {_cell(grant['actions'])} | {_cell(grant['conditions'])} |")
    return [*out, ""]


def to_markdown(reviews: Sequence[Mapping[str, Any]]) -> str:
    """The report a reviewer reads top to bottom: one page to approve from, then the detail."""
    out = ["# IAM review", "", LEGEND, ""]
    for data in reviews:
        out += summary_lines(data)
    for data in reviews:
        roles = data["roles"]
        out += [f"{DETAIL_HEADING} of stack {data['stack']}", ""]
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
        if data.get("people"):
            out += _people(data["people"])
        if data.get("key_grants"):
            out += _key_grants(data["key_grants"])
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
