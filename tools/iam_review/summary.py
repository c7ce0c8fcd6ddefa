"""The report's first page: what an account admin approves from.

Who can cause spending and under which conditions, every trust relationship, every wildcard with its
reason, every resource-based permission, the people's policies, and what changed since the committed
snapshot. Everything here is rendered from the review (:func:`iam_review.review.review`); the spending
principals are found by :mod:`iam_review.spending`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def trust_groups(roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Roles grouped by who may assume them and under which conditions."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for role in roles:
        for trust in role["trust"]:
            key = (tuple(trust["principals"]), tuple(trust["conditions"]))
            groups.setdefault(key, []).append(str(role["name"]))
    return [
        {"principals": list(p), "conditions": list(c), "roles": sorted(names)}
        for (p, c), names in sorted(groups.items(), key=lambda item: (item[0][0], -len(item[1])))
    ]


_NAME = re.compile(r"<[^>]+>")


def wildcards_by_service(wildcards: Iterable[Mapping[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """service -> [{wildcards, reason, principals}], one entry per reason. Names of the stack's resources
    are collapsed to ``<…>`` (except in bucket ARNs), so a pattern repeated per function is one item."""
    grouped: dict[str, dict[str, tuple[dict[str, None], set[str]]]] = {}
    for w in wildcards:
        value = w["wildcard"] if w["wildcard"].startswith("arn:aws:s3") else _NAME.sub("<…>", w["wildcard"])
        values, where = grouped.setdefault(w["service"], {}).setdefault(w["reason"], ({}, set()))
        values[value] = None
        where.add(w["where"])
    return {
        service: [
            {"wildcards": list(values), "reason": reason, "principals": len(where)}
            for reason, (values, where) in by_reason.items()
        ]
        for service, by_reason in sorted(grouped.items())
    }


def snapshot_changes(committed: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What differs from the committed snapshot, one entry per kind of change with where it happened."""
    if committed is None:
        return [{"change": "no committed snapshot to compare with", "where": []}]
    changes: dict[str, list[str]] = {}
    for section, title in (("roles", "role"), ("people", "people's policy"), ("resource_policies", "policy")):
        before, after = committed.get(section, {}), current.get(section, {})
        for name in sorted(set(after) - set(before)):
            changes.setdefault(f"new {title}", []).append(name)
        for name in sorted(set(before) - set(after)):
            changes.setdefault(f"{title} removed", []).append(name)
        for name in sorted(set(before) & set(after)):
            for change in _differences(before[name], after[name]):
                changes.setdefault(change, []).append(name)
    return [{"change": change, "where": where} for change, where in changes.items()]


def _as_set(statements: Iterable[Any]) -> set[str]:
    return {json.dumps(s, sort_keys=True) for s in statements}


def _differences(before: Any, after: Any) -> list[str]:
    if isinstance(before, list) or isinstance(after, list):
        return _statement_changes(before or [], after or [])
    found = []
    for part in ("trust", "managed_policies"):
        if before.get(part) != after.get(part):
            found.append(f"{part.replace('_', ' ')} changed")
    old, new = before.get("permissions_boundary"), after.get("permissions_boundary")
    if old != new:
        found.append(f"permissions boundary: {old or 'none'} -> {new or 'none'}")
    found += _statement_changes(before.get("statements", []), after.get("statements", []))
    return found


def _statement_changes(before: Iterable[Any], after: Iterable[Any]) -> list[str]:
    old, new = _as_set(before), _as_set(after)
    if old == new:
        return []
    return [f"statements: {len(new - old)} added, {len(old - new)} removed"]


def _shortener(region: str, account: str) -> Callable[[str], str]:
    """``arn:aws:bedrock:<region>:<account>:custom-model/*`` -> ``…:custom-model/*`` for this stack's
    Region and account; S3 ARNs lose their empty ``arn:aws:s3:::``."""
    accounts = "|".join(re.escape(a) for a in ("${AWS::AccountId}", account) if a)
    prefix = re.compile(rf"^arn:aws:[a-z0-9-]+:{re.escape(region)}:(?:{accounts}):")

    def shorten(value: str) -> str:
        return prefix.sub("…:", value.removeprefix("arn:aws:s3:::"))

    return shorten


def _principals(count: int) -> str:
    return "1 principal" if count == 1 else f"{count} principals"


def _code(values: Iterable[Any]) -> str:
    return ", ".join(f"`{v}`" for v in values) or "none"


def _statement_brief(statement: Mapping[str, Any], protected: str) -> str:
    principals = _code(statement.get("principals", []))
    actions = (
        _code(statement["actions"])
        if len(statement["actions"]) <= 3
        else f"{len(statement['actions'])} actions"
    )
    on = [r for r in statement["resources"] if r not in (protected, "*")]
    text = f"{statement['effect']} {principals} {actions}" + (f" on {_code(on)}" if on else "")
    return text + (f" if {_code(statement['conditions'])}" if statement["conditions"] else "")


def summary_lines(data: Mapping[str, Any]) -> list[str]:
    """The first page of the report, for one stack."""
    settings = data.get("settings") or {}
    out = [f"## Summary: stack {data['stack']}", ""]
    if settings:
        out += ["| " + " | ".join(settings) + " |", "|" + "---|" * len(settings)]
        out += ["| " + " | ".join(f"`{v}`" for v in settings.values()) + " |", ""]
    out += ["**Who can cause spending**, and under which conditions:"]
    for e in data.get("spending", []):
        who = f"person: {e['principal']}" if e["person"] else e["principal"]
        conditions = f"if {_code(e['conditions'])}" if e["conditions"] else "no condition"
        out.append(f"- **{who}** {'; '.join(e['spends'])}: on {_code(e['resources'])}; {conditions}")
    out += ["", "**Trust**: who may assume the roles, and under which conditions:"]
    for group in trust_groups(data["roles"]):
        conditions = f"if {_code(group['conditions'])}" if group["conditions"] else "no condition"
        out.append(f"- {_code(group['principals'])} ({conditions}): {', '.join(group['roles'])}")
    out += [
        "",
        "**Wildcards** left in Allow statements, by service, each with its reason (ARNs of this account and "
        "Region shortened to `…:` and their resource):",
    ]
    shorten = _shortener(settings.get("Region", ""), settings.get("account", ""))
    for service, groups in wildcards_by_service(data["wildcards"]).items():
        items = [
            f"{_code(shorten(w) for w in g['wildcards'])} ({_principals(g['principals'])}): {g['reason']}"
            for g in groups
        ]
        out.append(f"- `{service}`: " + " / ".join(items))
    out += ["", "**Resource-based permissions**:"]
    for policy in data["resource_policies"]:
        briefs = "; ".join(_statement_brief(s, policy["resource"]) for s in policy["statements"])
        out.append(f"- {policy['kind']} of `{policy['resource']}`: {briefs}")
    if data.get("people"):
        out += ["", "**People** (customer-managed policies, stack outputs; § People):"]
        for person in data["people"]:
            can = [a for a, ok in person["abilities"].items() if ok]
            cannot = [a for a, ok in person["abilities"].items() if not ok]
            out.append(
                f"- **{person['name']}** (`{person['output']}`): can {', '.join(can) or 'nothing listed'}; "
                f"cannot {', '.join(cannot) or '-'}"
            )
    if data.get("key_grants"):
        services = [g["principal"] for g in data["key_grants"] if g["principal"].startswith("Service ")]
        others = sorted({g["principal"] for g in data["key_grants"]} - set(services))
        out += [
            "",
            f"**The configured key**'s policy must allow {_code(services)}, and let this account's IAM "
            f"policies grant its use to {len(others)} principals (§ Key grants).",
        ]
    out += [
        "",
        "**Changes since the committed snapshot** (`tests/snapshots/iam.json`, cdk.json's configuration):",
    ]
    changes = data.get("changes")
    if changes is None:
        out.append("- not compared")
    elif not changes:
        out.append("- none: the synthesized IAM equals the snapshot")
    for change in changes or []:
        out.append(
            f"- {change['change']}: {', '.join(change['where'])}"
            if change["where"]
            else f"- {change['change']}"
        )
    return [*out, ""]
