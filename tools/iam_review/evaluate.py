"""Decide one request against identity-based policy statements, as IAM does.

The part of the IAM policy evaluation logic that this project's policies use: explicit Deny wins over
Allow, no matching Allow is an implicit deny; ``Action``/``NotAction`` and ``Resource``/``NotResource``
with ``*`` and ``?`` wildcards; and the condition operators below, with ``...IfExists`` and the
``ForAllValues:`` / ``ForAnyValue:`` set operators. An operator outside that list raises
:class:`UnsupportedCondition` instead of being guessed. Sources:

* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
* https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html

Statement values are plain strings (render CloudFormation values first, see
:func:`iam_review.review.readable_statement`). Requests name resources in the same rendering, e.g.
``arn:aws:s3:::<DataBucket>/datasets/run/train.jsonl``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ContextValue = str | Sequence[str]


class UnsupportedCondition(ValueError):
    """A condition operator (or a use of one) this evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it: the action, the resource ARN and the request context."""

    action: str
    resource: str
    #: Condition keys present in the request. A list is a multivalued key (``aws:TagKeys``).
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class Decision(enum.Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitly denied"
    IMPLICIT_DENY = "implicitly denied (no statement allows it)"


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    #: Sids (or positions) of the statements that allowed or denied the request.
    allowed_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def matches(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches an IAM wildcard ``pattern``."""
    return _glob(pattern, ignore_case).match(value) is not None


def _arn_matches(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-separated parts is matched on its own."""
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(matches(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


#: Base operator -> (does one context value match one policy value, is the operator negated).
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda policy, value: policy == value, False),
    "StringNotEquals": (lambda policy, value: policy == value, True),
    "StringEqualsIgnoreCase": (lambda policy, value: policy.lower() == value.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda policy, value: policy.lower() == value.lower(), True),
    "StringLike": (matches, False),
    "StringNotLike": (matches, True),
    "ArnEquals": (_arn_matches, False),
    "ArnLike": (_arn_matches, False),
    "ArnNotEquals": (_arn_matches, True),
    "ArnNotLike": (_arn_matches, True),
    "Bool": (lambda policy, value: policy.lower() == value.lower(), False),
}


def _one_value(match: Callable[[str, str], bool], negated: bool, policy: list[str], value: str) -> bool:
    """Policy values are ORed; for a negated operator, NORed."""
    hit = any(match(p, value) for p in policy)
    return not hit if negated else hit


def _condition_holds(operator: str, key: str, policy_values: Any, context: Mapping[str, Any]) -> bool:
    policy = _as_list(policy_values)
    present = key.lower() in context
    values = context.get(key.lower())
    if operator == "Null":
        # "true": the key must be absent; "false": present.
        return all((p.lower() == "true") != present for p in policy)
    set_operator, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _OPERATORS or set_operator not in ("", "ForAllValues", "ForAnyValue"):
        raise UnsupportedCondition(f"condition operator {operator!r} is not implemented")
    match, negated = _OPERATORS[base]
    if set_operator == "ForAllValues":
        return all(_one_value(match, negated, policy, v) for v in _as_list(values))
    if set_operator == "ForAnyValue":
        return any(_one_value(match, negated, policy, v) for v in _as_list(values))
    if not present:
        return if_exists or negated
    if not isinstance(values, str):
        raise UnsupportedCondition(
            f"{operator} on the multivalued key {key!r}: use ForAllValues: or ForAnyValue:"
        )
    return _one_value(match, negated, policy, values)


def conditions_hold(
    block: Mapping[str, Mapping[str, Any]] | None, context: Mapping[str, ContextValue]
) -> bool:
    """Every operator and every key of a Condition block holds (logical AND)."""
    lowered = {k.lower(): v for k, v in context.items()}
    return all(
        _condition_holds(operator, key, values, lowered)
        for operator, keys in (block or {}).items()
        for key, values in keys.items()
    )


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedCondition(f"statement effect {statement.get('Effect')!r} is neither Allow nor Deny")
    if "Principal" in statement or "NotPrincipal" in statement:
        raise UnsupportedCondition("resource-based statements (with a Principal) are not evaluated here")
    if "Action" in statement:
        action_ok = any(matches(a, request.action, ignore_case=True) for a in _as_list(statement["Action"]))
    else:
        action_ok = not any(
            matches(a, request.action, ignore_case=True) for a in _as_list(statement.get("NotAction"))
        )
    if "Resource" in statement:
        resource_ok = any(matches(r, request.resource) for r in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(matches(r, request.resource) for r in _as_list(statement.get("NotResource")))
    return action_ok and resource_ok and conditions_hold(statement.get("Condition"), request.context)


def evaluate(statements: Iterable[Mapping[str, Any]], request: Request) -> Evaluation:
    """The decision for ``request`` under all of ``statements`` (the union of a principal's policies)."""
    allowed: list[str] = []
    denied: list[str] = []
    for index, statement in enumerate(statements):
        if _applies(statement, request):
            label = str(statement.get("Sid") or f"statement {index}")
            (denied if statement.get("Effect") == "Deny" else allowed).append(label)
    if denied:
        return Evaluation(Decision.EXPLICIT_DENY, tuple(allowed), tuple(denied))
    if allowed:
        return Evaluation(Decision.ALLOWED, tuple(allowed))
    return Evaluation(Decision.IMPLICIT_DENY)
