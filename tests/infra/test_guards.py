"""The preflight and teardown custom resources in the synthesized template: existence, dependencies
(what exists while they run, and deletion order) and exact IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bedrock_finetune.settings import TrainingQueueSettings
from stacks.nag import ACTIONS_WITHOUT_RESOURCE_TYPE
from tests.conftest import Synthesized

STACK_TAG_CONDITION = {"StringEquals": {"aws:ResourceTag/finetune:stack": {"Ref": "AWS::StackId"}}}


def _bedrock_arn(resource: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":bedrock:us-west-2:",
                {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


JOBS = _bedrock_arn("model-customization-job/*")
THROUGHPUT = _bedrock_arn("provisioned-model/*")
CUSTOM_MODELS = _bedrock_arn("custom-model/*")


def _by_path(synth: Synthesized, resource_type: str, path_suffix: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (logical_id, resource)
        for logical_id, resource in synth.resources(resource_type).items()
        if resource.get("Metadata", {}).get("aws:cdk:path", "").endswith(path_suffix)
    ]
    assert len(matches) == 1, f"expected one {resource_type} at {path_suffix}, found {len(matches)}"
    return matches[0]


def _statements(synth: Synthesized, role_path: str) -> dict[str, dict[str, Any]]:
    """Every statement granted to the role, by Sid (statements without a Sid by their actions)."""
    role_id, _ = _by_path(synth, "AWS::IAM::Role", role_path)
    found: dict[str, dict[str, Any]] = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                found[statement.get("Sid") or str(statement["Action"])] = statement
    return found


def _topic_and_key(synth: Synthesized) -> tuple[str, str]:
    topic_id, _ = _by_path(synth, "AWS::SNS::Topic", "/Notifications/Topic/Resource")
    key_id, _ = _by_path(synth, "AWS::KMS::Key", "/Key/Resource")
    return topic_id, key_id


@pytest.fixture(scope="module")
def flipped() -> Synthesized:
    """The app with preflight off, custom-model deletion on and a configured training-queue limit (one
    more synthesis for this module)."""
    from aws_cdk.assertions import Template

    from stacks.application import build_app, cdk_json_context

    context = cdk_json_context(
        preflight=False,
        delete_custom_models_on_destroy=True,
        max_concurrent_jobs="3",
        **{"aws:cdk:enable-path-metadata": True},
    )
    app, stack, config = build_app(context, environment={})
    app.synth()  # cdk-nag must stay clean with these flags too
    template = Template.from_stack(stack)
    return Synthesized(stack=stack, config=config, template=template, json=template.to_json())


def test_preflight_checks_the_configured_model_and_its_warnings_are_a_stack_output(
    synthesized: Synthesized,
) -> None:
    logical_id, preflight = _by_path(synthesized, "Custom::BedrockPreflight", "/Guards/Preflight/Default")
    properties = preflight["Properties"]
    assert properties["BaseModelId"] == "anthropic.claude-3-haiku-20240307-v1:0:200k"
    assert properties["Region"] == {"Ref": "AWS::Region"}
    assert properties["ModelUnits"] == "1" and properties["Commitment"] == ""
    assert json.loads(properties["Hyperparameters"]) == {
        "batchSize": 32,
        "epochCount": 2,
        "learningRateMultiplier": 1.0,
    }
    assert synthesized.json["Outputs"]["PreflightWarnings"]["Value"] == {
        "Fn::GetAtt": [logical_id, "Warnings"]
    }


def test_teardown_runs_before_the_topic_and_key_are_deleted(synthesized: Synthesized) -> None:
    _, teardown = _by_path(synthesized, "Custom::BedrockTeardown", "/Guards/Teardown/Default")
    topic_id, key_id = _topic_and_key(synthesized)
    # CloudFormation deletes a resource before what it depends on.
    assert {topic_id, key_id} <= set(teardown["DependsOn"])
    assert teardown["Properties"]["StackTag"] == {"Ref": "AWS::StackId"}
    assert teardown["Properties"]["TopicArn"] == {"Ref": topic_id}
    assert teardown["Properties"]["DeleteCustomModels"] == "false"
    assert int(teardown["Properties"]["WaitSeconds"]) < 30 * 60, "gives up before the framework timeout"


def test_functions_that_create_billed_resources_wait_for_preflight_and_go_before_teardown(
    synthesized: Synthesized,
) -> None:
    preflight_id, _ = _by_path(synthesized, "Custom::BedrockPreflight", "/Guards/Preflight/Default")
    teardown_id, _ = _by_path(synthesized, "Custom::BedrockTeardown", "/Guards/Teardown/Default")
    for path in (
        "/StartCustomizationJob/Function/Resource",
        "/ServeModel/Function/Resource",
    ):
        _, function = _by_path(synthesized, "AWS::Lambda::Function", path)
        assert {preflight_id, teardown_id} <= set(function["DependsOn"]), path


def test_custom_resources_depend_on_their_separate_list_policies(synthesized: Synthesized) -> None:
    quota_policy, _ = _by_path(synthesized, "AWS::IAM::Policy", "/Guards/PreflightQuotaPolicy/Resource")
    list_policy, _ = _by_path(synthesized, "AWS::IAM::Policy", "/Guards/TeardownListPolicy/Resource")
    wait_policy, _ = _by_path(synthesized, "AWS::IAM::Policy", "/Guards/TeardownWaitListPolicy/Resource")
    _, preflight = _by_path(synthesized, "Custom::BedrockPreflight", "/Guards/Preflight/Default")
    _, teardown = _by_path(synthesized, "Custom::BedrockTeardown", "/Guards/Teardown/Default")
    assert quota_policy in preflight["DependsOn"]
    assert {list_policy, wait_policy} <= set(teardown["DependsOn"])


def test_teardown_provider_waits_with_the_is_complete_entry_point(synthesized: Synthesized) -> None:
    on_event_id, on_event = _by_path(
        synthesized, "AWS::Lambda::Function", "/Guards/TeardownFunction/Function/Resource"
    )
    wait_id, wait = _by_path(
        synthesized, "AWS::Lambda::Function", "/Guards/TeardownWaitFunction/Function/Resource"
    )
    assert on_event["Properties"]["Handler"] == "handlers.teardown.handler"
    assert wait["Properties"]["Handler"] == "handlers.teardown.is_complete"
    _, framework = _by_path(
        synthesized, "AWS::Lambda::Function", "/Guards/TeardownProvider/Provider/framework-onEvent/Resource"
    )
    variables = framework["Properties"]["Environment"]["Variables"]
    assert variables["USER_ON_EVENT_FUNCTION_ARN"] == {"Fn::GetAtt": [on_event_id, "Arn"]}
    assert variables["USER_IS_COMPLETE_FUNCTION_ARN"] == {"Fn::GetAtt": [wait_id, "Arn"]}


def test_preflight_role_is_read_only_and_scoped(synthesized: Synthesized) -> None:
    topic_id, key_id = _topic_and_key(synthesized)
    statements = _statements(synthesized, "/Guards/PreflightFunction/Role/Resource")
    assert set(statements) == {
        "WriteOwnLogs",
        "['xray:PutTelemetryRecords', 'xray:PutTraceSegments']",
        "ReadBaseModel",
        "ReadBedrockQuotas",
        "PublishReport",
        "EncryptReportViaSns",
    }
    assert statements["ReadBaseModel"] == {
        "Sid": "ReadBaseModel",
        "Effect": "Allow",
        "Action": "bedrock:GetFoundationModel",
        "Resource": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0:200k",
                ],
            ]
        },
    }
    assert statements["ReadBedrockQuotas"] == {
        "Sid": "ReadBedrockQuotas",
        "Effect": "Allow",
        "Action": ["servicequotas:ListAWSDefaultServiceQuotas", "servicequotas:ListServiceQuotas"],
        "Resource": "*",
    }
    assert statements["PublishReport"]["Resource"] == {"Ref": topic_id}
    assert statements["EncryptReportViaSns"] == {
        "Sid": "EncryptReportViaSns",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": {"Fn::GetAtt": [key_id, "Arn"]},
        "Condition": {"StringEquals": {"kms:ViaService": "sns.us-west-2.amazonaws.com"}},
    }


def test_teardown_role_stops_and_deletes_only_what_is_tagged_with_this_stack(
    synthesized: Synthesized,
) -> None:
    statements = _statements(synthesized, "/Guards/TeardownFunction/Role/Resource")
    assert set(statements) == {
        "WriteOwnLogs",
        "['xray:PutTelemetryRecords', 'xray:PutTraceSegments']",
        "TellDeletionFromReplacement",
        "ListJobsAndThroughput",
        "ReadTags",
        "StopJobsOfThisStack",
        "DeleteThroughputOfThisStack",
        "DeleteDeploymentsOfThisStack",
        "PublishReport",
        "EncryptReportViaSns",
    }
    assert statements["TellDeletionFromReplacement"]["Resource"] == {"Ref": "AWS::StackId"}
    assert statements["ListJobsAndThroughput"]["Action"] == [
        "bedrock:ListCustomModelDeployments",
        "bedrock:ListModelCustomizationJobs",
        "bedrock:ListProvisionedModelThroughputs",
    ]
    assert statements["DeleteDeploymentsOfThisStack"]["Condition"] == STACK_TAG_CONDITION
    assert JOBS in statements["ReadTags"]["Resource"] and THROUGHPUT in statements["ReadTags"]["Resource"]
    assert statements["StopJobsOfThisStack"] == {
        "Sid": "StopJobsOfThisStack",
        "Effect": "Allow",
        "Action": "bedrock:StopModelCustomizationJob",
        "Resource": JOBS,
        "Condition": STACK_TAG_CONDITION,
    }
    assert statements["DeleteThroughputOfThisStack"] == {
        "Sid": "DeleteThroughputOfThisStack",
        "Effect": "Allow",
        "Action": "bedrock:DeleteProvisionedModelThroughput",
        "Resource": THROUGHPUT,
        "Condition": STACK_TAG_CONDITION,
    }


def test_teardown_wait_role_keeps_custom_models_by_default(synthesized: Synthesized) -> None:
    statements = _statements(synthesized, "/Guards/TeardownWaitFunction/Role/Resource")
    assert set(statements) == {
        "WriteOwnLogs",
        "['xray:PutTelemetryRecords', 'xray:PutTraceSegments']",
        "ListThroughput",
        "ReadTags",
        "DeleteThroughputOfThisStack",
        "DeleteDeploymentsOfThisStack",
    }
    assert statements["ListThroughput"]["Action"] == [
        "bedrock:ListCustomModelDeployments",
        "bedrock:ListProvisionedModelThroughputs",
    ]
    assert THROUGHPUT in statements["ReadTags"]["Resource"]
    assert statements["DeleteThroughputOfThisStack"]["Condition"] == STACK_TAG_CONDITION


def test_provider_framework_roles_have_no_managed_policies_and_no_wildcards_outside_the_list(
    synthesized: Synthesized,
) -> None:
    for logical_id, role in synthesized.resources("AWS::IAM::Role").items():
        if "/Guards/" in role["Metadata"]["aws:cdk:path"]:
            assert "ManagedPolicyArns" not in role["Properties"], logical_id
    for logical_id, policy in synthesized.resources("AWS::IAM::Policy").items():
        if "/Guards/" not in policy["Metadata"]["aws:cdk:path"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Resource"] == "*":
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert set(actions) <= set(ACTIONS_WITHOUT_RESOURCE_TYPE), (logical_id, actions)


def test_framework_logs_are_encrypted_with_the_app_key(synthesized: Synthesized) -> None:
    _, key_id = _topic_and_key(synthesized)
    for path in ("/Guards/PreflightProvider/Logs/Resource", "/Guards/TeardownProvider/Logs/Resource"):
        _, log_group = _by_path(synthesized, "AWS::Logs::LogGroup", path)
        assert log_group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_preflight_flag_removes_preflight_and_custom_model_flag_grants_tagged_deletion(
    flipped: Synthesized,
) -> None:
    assert flipped.resources("Custom::BedrockPreflight") == {}
    assert "PreflightWarnings" not in flipped.json["Outputs"]
    _, teardown = _by_path(flipped, "Custom::BedrockTeardown", "/Guards/Teardown/Default")
    assert teardown["Properties"]["DeleteCustomModels"] == "true"
    statements = _statements(flipped, "/Guards/TeardownWaitFunction/Role/Resource")
    assert statements["DeleteCustomModelsOfThisStack"] == {
        "Sid": "DeleteCustomModelsOfThisStack",
        "Effect": "Allow",
        "Action": "bedrock:DeleteCustomModel",
        "Resource": CUSTOM_MODELS,
        "Condition": STACK_TAG_CONDITION,
    }
    assert statements["ListThroughput"]["Action"] == [
        "bedrock:ListCustomModelDeployments",
        "bedrock:ListCustomModels",
        "bedrock:ListProvisionedModelThroughputs",
    ]
    assert CUSTOM_MODELS in statements["ReadTags"]["Resource"]
    assert THROUGHPUT in statements["ReadTags"]["Resource"]


def test_without_the_preflight_the_queue_limit_is_the_configured_one(flipped: Synthesized) -> None:
    # Given preflight = false (no quota is read at deploy time) and max_concurrent_jobs = 3
    _, function = _by_path(flipped, "AWS::Lambda::Function", "/TrainingQueue/Function/Resource")
    # Then the training queue lets 3 jobs run at once, a plain value in its environment
    variable = TrainingQueueSettings.variable("max_concurrent_jobs")
    assert function["Properties"]["Environment"]["Variables"][variable] == "3"
