"""The policy evaluator that the IAM report and the people tests decide requests with.

Cases follow the IAM documentation's evaluation logic and condition operator pages.
"""

from __future__ import annotations

from typing import Any

import pytest

from iam_review.evaluate import Decision, Request, UnsupportedCondition, evaluate, matches

BUCKET = "arn:aws:s3:::bucket"


def allow(
    action: Any, resource: Any, condition: dict[str, Any] | None = None, sid: str = "A"
) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("arn:aws:s3:::bucket/datasets/*", "arn:aws:s3:::bucket/datasets/run/train.jsonl", True),
        ("arn:aws:s3:::bucket/datasets/*", "arn:aws:s3:::bucket/reports/run/x.json", False),
        ("arn:aws:s3:::bucket/reports/*/line.json", "arn:aws:s3:::bucket/reports/run/line.json", True),
        ("arn:aws:s3:::bucket/reports/*/line.json", "arn:aws:s3:::bucket/reports/run/other.json", False),
        ("arn:aws:s3:::bucket/run-?", "arn:aws:s3:::bucket/run-1", True),
        ("arn:aws:s3:::bucket/run-?", "arn:aws:s3:::bucket/run-12", False),
        ("arn:aws:s3:::Bucket/*", "arn:aws:s3:::bucket/x", False),  # resources are case-sensitive
        ("*", "anything:at/all", True),
    ],
)
def test_iam_wildcards(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


def test_actions_match_without_regard_to_case_and_with_wildcards() -> None:
    statements = [allow("s3:Get*", "*")]
    assert evaluate(statements, Request("S3:GETOBJECT", "x")).allowed
    assert not evaluate(statements, Request("s3:PutObject", "x")).allowed


def test_nothing_allowed_is_an_implicit_deny_and_an_explicit_deny_wins() -> None:
    """Given an Allow and a Deny that both match, then the Deny decides; with neither, nothing is allowed."""
    key = f"{BUCKET}/reports/run/approval.json"
    allow_reports = allow("s3:GetObject", f"{BUCKET}/reports/*")
    deny_tokens = {
        "Sid": "D",
        "Effect": "Deny",
        "Action": "s3:GetObject",
        "Resource": f"{BUCKET}/*/approval.json",
    }
    assert evaluate([], Request("s3:GetObject", key)).decision is Decision.IMPLICIT_DENY
    assert evaluate([allow_reports], Request("s3:GetObject", key)).decision is Decision.ALLOWED
    result = evaluate([allow_reports, deny_tokens], Request("s3:GetObject", key))
    assert result.decision is Decision.EXPLICIT_DENY
    assert result.denied_by == ("D",)


def test_not_action_and_not_resource_match_everything_else() -> None:
    statements = [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{BUCKET}/secret/*"}]
    assert evaluate(statements, Request("s3:GetObject", f"{BUCKET}/open/x")).allowed
    assert not evaluate(statements, Request("iam:PassRole", f"{BUCKET}/open/x")).allowed
    assert not evaluate(statements, Request("s3:GetObject", f"{BUCKET}/secret/x")).allowed


TAGGED = {"StringEquals": {"aws:ResourceTag/finetune:stack": "stack-a"}}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"aws:ResourceTag/finetune:stack": "stack-a"}, True),
        ({"aws:ResourceTag/finetune:stack": "stack-b"}, False),
        ({}, False),  # a key missing from the request does not match
        ({"AWS:RESOURCETAG/FINETUNE:STACK": "stack-a"}, True),  # key names are case-insensitive
    ],
)
def test_string_equals_needs_the_key_with_the_value(context: dict[str, str], expected: bool) -> None:
    request = Request("bedrock:UpdateProvisionedModelThroughput", "arn:x", context)
    assert evaluate([allow("bedrock:*", "*", TAGGED)], request).allowed is expected


@pytest.mark.parametrize(
    ("operator", "context", "expected"),
    [
        ("StringNotEquals", {}, True),  # negated operators hold when the key is absent
        ("StringNotEquals", {"k": "a"}, False),
        ("StringNotEquals", {"k": "c"}, True),
        ("StringEqualsIfExists", {}, True),
        ("StringEqualsIfExists", {"k": "c"}, False),
        ("StringEqualsIfExists", {"k": "b"}, True),
        ("StringLike", {"k": "a"}, True),
        ("StringEqualsIgnoreCase", {"k": "A"}, True),
        ("StringNotEqualsIgnoreCase", {"k": "B"}, False),
    ],
)
def test_string_operators(operator: str, context: dict[str, str], expected: bool) -> None:
    statements = [allow("s3:GetObject", "*", {operator: {"k": ["a", "b"]}})]
    assert evaluate(statements, Request("s3:GetObject", "x", context)).allowed is expected


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"s3:prefix": "reports/run/"}, True),
        ({"s3:prefix": "datasets/run/"}, False),
        ({}, False),
    ],
)
def test_string_like_uses_wildcards(context: dict[str, str], expected: bool) -> None:
    statements = [allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": ["reports/*"]}})]
    assert evaluate(statements, Request("s3:ListBucket", BUCKET, context)).allowed is expected


OWN_KEYS = {"ForAllValues:StringEquals": {"aws:TagKeys": ["finetune:stack", "finetune:run"]}}


@pytest.mark.parametrize(
    ("tag_keys", "expected"),
    [
        (["finetune:stack"], True),
        (["finetune:stack", "finetune:run"], True),
        (["finetune:stack", "owner"], False),  # every requested key must be one of the policy's
        (None, True),  # ForAllValues holds when the key is absent
    ],
)
def test_for_all_values_limits_every_requested_tag_key(tag_keys: list[str] | None, expected: bool) -> None:
    context = {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    request = Request("bedrock:TagResource", "arn:x", context)
    assert evaluate([allow("bedrock:TagResource", "*", OWN_KEYS)], request).allowed is expected


def test_for_any_value_needs_one_match_and_fails_when_the_key_is_absent() -> None:
    statements = [allow("x:Y", "*", {"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}})]
    assert evaluate(statements, Request("x:Y", "r", {"aws:TagKeys": ["b", "a"]})).allowed
    assert not evaluate(statements, Request("x:Y", "r", {"aws:TagKeys": ["b"]})).allowed
    assert not evaluate(statements, Request("x:Y", "r")).allowed


def test_multivalued_keys_need_a_set_operator() -> None:
    statements = [allow("x:Y", "*", {"StringEquals": {"aws:TagKeys": "a"}})]
    with pytest.raises(UnsupportedCondition, match="ForAllValues"):
        evaluate(statements, Request("x:Y", "r", {"aws:TagKeys": ["a"]}))


def test_conditions_are_anded_across_operators_and_keys() -> None:
    condition = {
        "StringEquals": {"aws:RequestTag/finetune:stack": "stack-a"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["finetune:stack"]},
    }
    statements = [allow("bedrock:TagResource", "*", condition)]
    good = {"aws:RequestTag/finetune:stack": "stack-a", "aws:TagKeys": ["finetune:stack"]}
    assert evaluate(statements, Request("bedrock:TagResource", "r", good)).allowed
    other_stack = {**good, "aws:RequestTag/finetune:stack": "stack-b"}
    assert not evaluate(statements, Request("bedrock:TagResource", "r", other_stack)).allowed


@pytest.mark.parametrize(
    ("source_arn", "expected"),
    [
        ("arn:aws:bedrock:us-west-2:111122223333:model-customization-job/abc", True),
        ("arn:aws:bedrock:us-west-2:444455556666:model-customization-job/abc", False),
        ("arn:aws:bedrock:us-west-2:111122223333:custom-model/abc", False),
        ("not-an-arn", False),
    ],
)
def test_arn_operators_match_each_part(source_arn: str, expected: bool) -> None:
    pattern = "arn:aws:bedrock:*:111122223333:model-customization-job/*"
    statements = [allow("s3:GetObject", "*", {"ArnLike": {"aws:SourceArn": pattern}})]
    request = Request("s3:GetObject", "x", {"aws:SourceArn": source_arn})
    assert evaluate(statements, request).allowed is expected


def test_arn_wildcards_do_not_reach_across_parts() -> None:
    """``*`` in the region part cannot swallow the account part."""
    statements = [allow("x:Y", "*", {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:topic"}})]
    assert not evaluate(statements, Request("x:Y", "r", {"aws:SourceArn": "arn:aws:sns:r:1:topic"})).allowed


@pytest.mark.parametrize(
    ("policy", "present", "expected"),
    [("true", False, True), ("true", True, False), ("false", True, True), ("false", False, False)],
)
def test_null_checks_whether_the_key_is_present(policy: str, present: bool, expected: bool) -> None:
    statements = [allow("x:Y", "*", {"Null": {"aws:TagKeys": policy}})]
    context = {"aws:TagKeys": ["a"]} if present else {}
    assert evaluate(statements, Request("x:Y", "r", context)).allowed is expected


def test_bool_compares_true_and_false() -> None:
    statements = [allow("x:Y", "*", {"Bool": {"aws:SecureTransport": "true"}})]
    assert evaluate(statements, Request("x:Y", "r", {"aws:SecureTransport": "true"})).allowed
    assert not evaluate(statements, Request("x:Y", "r", {"aws:SecureTransport": "false"})).allowed


@pytest.mark.parametrize(
    "statement",
    [
        allow("x:Y", "*", {"NumericLessThan": {"s3:max-keys": "10"}}),
        allow("x:Y", "*", {"ForEveryValue:StringEquals": {"k": "v"}}),
        {"Effect": "Allow", "Principal": "*", "Action": "x:Y", "Resource": "*"},
        {"Effect": "Maybe", "Action": "x:Y", "Resource": "*"},
    ],
    ids=["numeric", "unknown-set-operator", "resource-policy", "bad-effect"],
)
def test_what_it_does_not_implement_raises_instead_of_guessing(statement: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedCondition):
        evaluate([statement], Request("x:Y", "r", {"s3:max-keys": "5", "k": "v"}))
