"""The synthesized template: the properties that matter for security and for the trigger."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.conftest import Synthesized

BEDROCK_JOB_ARN = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":bedrock:us-west-2:",
            {"Ref": "AWS::AccountId"},
            ":model-customization-job/*",
        ],
    ]
}


def _role_named(synth: Synthesized, path_fragment: str) -> tuple[str, dict[str, Any]]:
    for logical_id, role in synth.resources("AWS::IAM::Role").items():
        if path_fragment in role.get("Metadata", {}).get("aws:cdk:path", ""):
            return logical_id, role
    raise AssertionError(f"no role under {path_fragment}")


def _statements_of(synth: Synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_service_role_is_trusted_by_bedrock_for_this_accounts_jobs_only(synthesized: Synthesized) -> None:
    _, role = _role_named(synthesized, "/BedrockServiceRole/Role/Resource")
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnEquals": {"aws:SourceArn": BEDROCK_JOB_ARN},
            },
        }
    ]


def test_service_role_reads_frozen_datasets_writes_outputs_and_nothing_else(synthesized: Synthesized) -> None:
    logical_id, _ = _role_named(synthesized, "/BedrockServiceRole/Role/Resource")
    statements = {s.get("Sid"): s for s in _statements_of(synthesized, logical_id)}
    assert set(statements) == {
        "ReadFrozenDatasets",
        "WriteOutputs",
        "ListRunPrefixes",
        "UseBucketKeyViaS3",
        "EncryptCustomModelViaBedrock",
    }
    assert statements["ReadFrozenDatasets"]["Action"] == "s3:GetObject"
    assert json.dumps(statements["ReadFrozenDatasets"]["Resource"]).endswith('"/frozen/*"]]}')
    assert statements["WriteOutputs"]["Action"] == "s3:PutObject"
    assert json.dumps(statements["WriteOutputs"]["Resource"]).endswith('"/outputs/*"]]}')
    assert statements["ListRunPrefixes"]["Condition"] == {
        "StringLike": {"s3:prefix": ["frozen/*", "outputs/*"]}
    }
    assert statements["UseBucketKeyViaS3"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}
    }


def test_only_the_start_job_lambda_passes_the_service_role_and_only_to_bedrock(
    synthesized: Synthesized,
) -> None:
    service_role_id, _ = _role_named(synthesized, "/BedrockServiceRole/Role/Resource")
    pass_role_statements = [
        (path, s)
        for role_id, role in synthesized.resources("AWS::IAM::Role").items()
        for s in _statements_of(synthesized, role_id)
        if "iam:PassRole" in _as_list(s["Action"])
        for path in [role["Metadata"]["aws:cdk:path"]]
    ]
    assert len(pass_role_statements) == 1
    path, statement = pass_role_statements[0]
    assert "/StartCustomizationJob/" in path
    assert statement["Resource"] == {"Fn::GetAtt": [service_role_id, "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "bedrock.amazonaws.com"}}


def test_no_bedrock_create_action_has_a_wildcard_resource(synthesized: Synthesized) -> None:
    checked = 0
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            if any(a.startswith("bedrock:Create") for a in actions):
                checked += 1
                assert "*" not in _as_list(statement["Resource"]), statement
    # CreateModelCustomizationJob; the serving creates (on this stack's models; tagged endpoints), for
    # ServeModel and for EvaluateCandidate (the candidate's temporary deployment)
    assert checked == 5


def test_create_job_is_scoped_to_the_base_model_and_this_accounts_resources(synthesized: Synthesized) -> None:
    role_id, _ = _role_named(synthesized, "/StartCustomizationJob/Role/Resource")
    statement = next(
        s for s in _statements_of(synthesized, role_id) if s.get("Sid") == "CreateJobForBaseModel"
    )
    rendered = json.dumps(statement["Resource"])
    assert "::foundation-model/anthropic.claude-3-haiku-20240307-v1:0:200k" in rendered
    assert ":custom-model/*" in rendered
    assert ":model-customization-job/*" in rendered


def test_delete_and_stop_are_limited_to_resources_tagged_with_this_stack(synthesized: Synthesized) -> None:
    for fragment in ("/CleanUpFailedRun/Role/Resource", "/CleanUpEndedExecution/Role/Resource"):
        role_id, _ = _role_named(synthesized, fragment)
        destructive = [
            s
            for s in _statements_of(synthesized, role_id)
            if any(a.startswith(("bedrock:Delete", "bedrock:Stop")) for a in _as_list(s["Action"]))
        ]
        assert len(destructive) == 3  # stop jobs, delete throughput, delete deployments
        for statement in destructive:
            assert statement["Condition"] == {
                "StringEquals": {"aws:ResourceTag/finetune:stack": {"Ref": "AWS::StackId"}}
            }


def test_bucket_is_kms_encrypted_private_versioned_logged_and_sends_events(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": Match.any_value(),
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "dataset-bucket/"}),
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {"NoncurrentVersionExpiration": {"NoncurrentDays": 90}, "Status": "Enabled"}
                        )
                    ]
                )
            },
        },
    )
    synthesized.template.has_resource_properties(
        "Custom::S3BucketNotifications", {"NotificationConfiguration": {"EventBridgeConfiguration": {}}}
    )


def test_bucket_and_topic_refuse_plain_http(synthesized: Synthesized) -> None:
    for resource_type in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"):
        documents = [r["Properties"]["PolicyDocument"] for r in synthesized.resources(resource_type).values()]
        assert documents, resource_type
        for document in documents:
            assert any(
                s["Effect"] == "Deny"
                and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                for s in document["Statement"]
            ), document


def test_topic_is_encrypted_with_the_app_key(synthesized: Synthesized) -> None:
    (topic,) = synthesized.resources("AWS::SNS::Topic").values()
    (key_id,) = synthesized.resources("AWS::KMS::Key")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = synthesized.json["Resources"][key_id]
    assert key["Properties"]["EnableKeyRotation"] is True


def _upload_rule_pattern(synth: Synthesized) -> dict[str, Any]:
    rules = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]
    ]
    assert len(rules) == 1
    return rules[0]["Properties"]["EventPattern"]  # type: ignore[no-any-return]


def _object_created(bucket: str, key: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-22T00:00:00Z",
        "region": "us-west-2",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "version-id": "v1"},
            "reason": "PutObject",
        },
    }


@pytest.mark.parametrize(
    ("key", "starts_run"),
    [
        ("datasets/a/train.jsonl", True),
        ("datasets/json-mode/train.jsonl", True),
        ("datasets/a/validation.jsonl", False),
        ("datasets/a/hyperparameters.json", False),
        ("reports/a/validation.json", False),
        ("outputs/a/model-customization-job-x/training_artifacts/train.jsonl", False),
        ("train.jsonl", False),
    ],
)
def test_upload_rule_matches_training_uploads_only(
    synthesized: Synthesized, key: str, starts_run: bool
) -> None:
    # Given the deployed rule's pattern, with the bucket name it resolves to
    from moto.events.models import EventPattern

    bucket_ref = json.dumps({"Ref": _bucket_id(synthesized)})
    pattern = json.dumps(_upload_rule_pattern(synthesized)).replace(bucket_ref, '"my-bucket"')
    # When an object is created at `key`, Then the rule matches only datasets/<run>/train.jsonl
    assert EventPattern.load(pattern).matches_event(_object_created("my-bucket", key)) is starts_run
    # And an upload to another bucket never matches
    assert EventPattern.load(pattern).matches_event(_object_created("other", key)) is False


def _bucket_id(synth: Synthesized) -> str:
    for logical_id, bucket in synth.resources("AWS::S3::Bucket").items():
        if bucket["Metadata"]["aws:cdk:path"].endswith("/Data/Bucket/Resource"):
            return logical_id
    raise AssertionError("no dataset bucket")


def test_rule_passes_the_runs_identity_to_the_state_machine(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like({"source": ["aws.s3"]}),
            "Targets": [
                Match.object_like(
                    {
                        "InputTransformer": {
                            "InputPathsMap": {
                                "detail-bucket-name": "$.detail.bucket.name",
                                "detail-object-key": "$.detail.object.key",
                                "detail-object-etag": "$.detail.object.etag",
                                "detail-object-version-id": "$.detail.object.version-id",
                                "detail-object-sequencer": "$.detail.object.sequencer",
                            },
                            "InputTemplate": Match.string_like_regexp(r'"bucket":<detail-bucket-name>'),
                        },
                        "DeadLetterConfig": Match.any_value(),
                    }
                )
            ],
        },
    )


def test_stack_outputs_name_what_users_need(synthesized: Synthesized) -> None:
    outputs = synthesized.json["Outputs"]
    assert {"BucketName", "StateMachineArn", "TopicArn", "ServiceRoleArn"} <= set(outputs)


def test_buying_or_changing_serving_is_limited_to_this_stacks_models_and_endpoints(
    synthesized: Synthesized,
) -> None:
    """Given ServeModel's role, then CreateProvisionedModelThroughput, UpdateProvisionedModelThroughput,
    CreateCustomModelDeployment and UpdateCustomModelDeployment apply only to custom models tagged
    with this stack, a new endpoint must carry this stack's tag as it is created, and only endpoints
    already tagged with it can be changed."""
    stack_tag = {"Ref": "AWS::StackId"}
    role_id, _ = _role_named(synthesized, "/ServeModel/Role/Resource")
    statements = {s.get("Sid"): s for s in _statements_of(synthesized, role_id)}
    models = statements["ServeOnlyThisStacksModels"]
    assert sorted(_as_list(models["Action"])) == [
        "bedrock:CreateCustomModelDeployment",
        "bedrock:CreateProvisionedModelThroughput",
        "bedrock:UpdateCustomModelDeployment",
        "bedrock:UpdateProvisionedModelThroughput",
    ]
    assert ":custom-model/*" in json.dumps(models["Resource"])
    assert models["Condition"] == {"StringEquals": {"aws:ResourceTag/finetune:stack": stack_tag}}
    create = statements["CreateEndpointsTaggedWithThisStack"]
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/finetune:stack": stack_tag}}
    update = statements["UpdateEndpointsOfThisStack"]
    assert update["Condition"] == {"StringEquals": {"aws:ResourceTag/finetune:stack": stack_tag}}
    for statement in (create, update):
        rendered = json.dumps(statement["Resource"])
        assert ":provisioned-model/*" in rendered and ":custom-model-deployment/*" in rendered
    spending = [
        s
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if {"bedrock:CreateProvisionedModelThroughput", "bedrock:CreateCustomModelDeployment"}
        & set(_as_list(s["Action"]))
    ]
    assert all("Condition" in s for s in spending)  # no role can buy serving unconditionally


def test_outputs_give_the_cli_the_validator_and_every_log_group(synthesized: Synthesized) -> None:
    # Given the synthesized stack
    template = synthesized.json
    outputs = template["Outputs"]
    # Then finetune submit finds the deployed validator (its settings are the check's)
    validators = [
        logical
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "handlers.validate_dataset.handler"
    ]
    assert outputs["ValidateFunctionName"]["Value"] == {"Ref": validators[0]}
    # and finetune logs every log group of the stack, the functions' and the state machine's
    separator, parts = outputs["LogGroupNames"]["Value"]["Fn::Join"]
    groups = {logical for logical, r in template["Resources"].items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert separator == ","
    assert {part["Ref"] for part in parts} == groups
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    logged = {
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for f in functions
        if "LoggingConfig" in f["Properties"]
    }
    assert logged <= groups
