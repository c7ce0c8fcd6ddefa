"""Encryption at rest with the app's key (or the configured one) and TLS-only access."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from iam_review.render import Renderer, as_list
from iam_review.review import resources_of
from stacks.application import build_app, cdk_json_context
from tests.infra.conftest import CONFIGURED_KEY, IamSynth


def expected_key(synth: IamSynth) -> str:
    """The key everything must use: the configured ARN, or the stack's own key."""
    return str(synth.context.get("kms_key_arn") or "<Key>")


def shown(template: Mapping[str, Any], value: Any) -> str:
    return Renderer(template["Resources"]).readable(value)


def test_the_stack_creates_a_key_only_when_none_is_configured(iam_synth: IamSynth) -> None:
    keys = list(resources_of(iam_synth.template, "AWS::KMS::Key"))
    assert len(keys) == (0 if iam_synth.context.get("kms_key_arn") else 1)
    for _, key in keys:
        assert key["Properties"]["EnableKeyRotation"] is True


def test_dataset_bucket_uses_the_key(iam_synth: IamSynth) -> None:
    template = iam_synth.template
    kms_buckets = [
        shown(template, rule["ServerSideEncryptionByDefault"].get("KMSMasterKeyID"))
        for _, bucket in resources_of(template, "AWS::S3::Bucket")
        for rule in bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    ]
    assert kms_buckets == [expected_key(iam_synth)]


def test_topic_uses_the_key(iam_synth: IamSynth) -> None:
    template = iam_synth.template
    topics = [
        shown(template, t["Properties"]["KmsMasterKeyId"])
        for _, t in resources_of(template, "AWS::SNS::Topic")
    ]
    assert topics == [expected_key(iam_synth)]


def test_every_log_group_uses_the_key(iam_synth: IamSynth) -> None:
    """The state machine's log group and every function's log group."""
    template = iam_synth.template
    groups = {
        shown(template, g["Properties"].get("KmsKeyId"))
        for _, g in resources_of(template, "AWS::Logs::LogGroup")
    }
    assert groups == {expected_key(iam_synth)}
    # Every state machine (the Provider framework's waiter too) logs every state to one of these groups.
    log_group_ids = {g for g, _ in resources_of(template, "AWS::Logs::LogGroup")}
    machines = resources_of(template, "AWS::StepFunctions::StateMachine")
    assert machines
    for _, machine in machines:
        logging = machine["Properties"].get("LoggingConfiguration")
        assert logging, machine["Metadata"]["aws:cdk:path"]
        assert logging["Level"] == "ALL"
        for destination in logging["Destinations"]:
            arn = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
            assert arn["Fn::GetAtt"][0] in log_group_ids


def test_every_function_environment_uses_the_key(iam_synth: IamSynth) -> None:
    """Functions with configuration in their environment encrypt it with the app's key."""
    template = iam_synth.template
    with_environment = [
        f["Properties"]
        for _, f in resources_of(template, "AWS::Lambda::Function")
        if f["Properties"].get("Environment")
    ]
    assert with_environment
    assert {shown(template, f.get("KmsKeyArn")) for f in with_environment} == {expected_key(iam_synth)}


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    return (
        statement["Effect"] == "Deny"
        and statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    )


def test_buckets_refuse_non_tls_requests(iam_synth: IamSynth) -> None:
    template = iam_synth.template
    for _, policy in resources_of(template, "AWS::S3::BucketPolicy"):
        bucket = shown(template, policy["Properties"]["Bucket"])
        denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if _denies_plain_http(s)]
        assert denies, bucket
        deny = denies[0]
        assert as_list(deny["Action"]) == ["s3:*"]
        covered = {shown(template, r) for r in as_list(deny["Resource"])}
        assert covered == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    bucket_count = len(list(resources_of(template, "AWS::S3::Bucket")))
    assert len(list(resources_of(template, "AWS::S3::BucketPolicy"))) == bucket_count


def test_topic_refuses_non_tls_publishing(iam_synth: IamSynth) -> None:
    template = iam_synth.template
    policies = [p["Properties"] for _, p in resources_of(template, "AWS::SNS::TopicPolicy")]
    assert policies
    for policy in policies:
        denies = [s for s in policy["PolicyDocument"]["Statement"] if _denies_plain_http(s)]
        assert denies and "sns:Publish" in as_list(denies[0]["Action"])


def test_key_policy_grants_only_the_account_and_conditioned_log_delivery(default_synth: IamSynth) -> None:
    """Account root administers (IAM grants use per role); CloudWatch Logs only for this account's logs;
    CloudWatch alarms only to publish to this account's SNS topics."""
    template = default_synth.template
    (_, key), *_ = resources_of(template, "AWS::KMS::Key")
    renderer = Renderer(template["Resources"])
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principals = renderer.principals(statement["Principal"])
        if principals == ["AWS arn:aws:iam::${AWS::AccountId}:root"]:
            continue
        if principals == ["Service cloudwatch.amazonaws.com"]:
            assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
            topics = statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:sns:topicArn"]
            assert renderer.readable(topics) == "arn:aws:sns:us-west-2:${AWS::AccountId}:*"
            continue
        assert principals == ["Service logs.us-west-2.amazonaws.com"], principals
        assert not any("*" in a for a in as_list(statement["Action"])), statement["Action"]
        context = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert renderer.readable(context) == "arn:aws:logs:us-west-2:${AWS::AccountId}:log-group:*"


def test_configured_key_is_used_by_arn(variant_synth: IamSynth) -> None:
    assert expected_key(variant_synth) == CONFIGURED_KEY


@pytest.mark.parametrize(
    ("context", "deletion"),
    [
        # Custom models are kept by teardown: their key must stay, even with removal_policy=destroy.
        ({"removal_policy": "destroy"}, "Retain"),
        # A committed throughput keeps billing after the stack: its model's key must stay too.
        (
            {"removal_policy": "destroy", "delete_custom_models_on_destroy": True, "commitment": "OneMonth"},
            "Retain",
        ),
        # Nothing encrypted outlives the stack: the key goes with it.
        ({"removal_policy": "destroy", "delete_custom_models_on_destroy": True}, "Delete"),
    ],
    ids=["models-kept", "committed-throughput", "nothing-kept"],
)
def test_the_key_stays_while_anything_it_encrypts_outlives_the_stack(
    tmp_path: Path, context: dict[str, Any], deletion: str
) -> None:
    app, stack, _ = build_app(cdk_json_context(**context), environment={}, outdir=str(tmp_path))
    template = app.synth().get_stack_by_name(stack.stack_name).template
    (key,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    assert key["DeletionPolicy"] == deletion
