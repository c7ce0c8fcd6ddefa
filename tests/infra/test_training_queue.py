"""The training queue in the template: its table, its function's limit and grants, the clean-ups' grants."""

from __future__ import annotations

from typing import Any

from bedrock_finetune.settings import CleanUpSettings, TrainingQueueSettings
from tests.conftest import Synthesized
from tests.infra.test_guards import _by_path, _statements


def _table(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    return _by_path(synth, "AWS::DynamoDB::Table", "/TrainingQueueTable/Table/Resource")


def _queue_function(synth: Synthesized) -> dict[str, Any]:
    return _by_path(synth, "AWS::Lambda::Function", "/TrainingQueue/Function/Resource")[1]


def test_the_table_is_encrypted_with_the_stacks_key_recoverable_and_retained(
    synthesized: Synthesized,
) -> None:
    # Given the configuration as committed (removal_policy = retain)
    _, table = _table(synthesized)
    key_id, _ = _by_path(synthesized, "AWS::KMS::Key", "/Key/Resource")
    properties = table["Properties"]
    # Then the semaphore's table uses the stack's key, point-in-time recovery is on, and it is kept
    assert properties["SSESpecification"] == {
        "KMSMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        "SSEEnabled": True,
        "SSEType": "KMS",
    }
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert "TableName" not in properties  # no hard-coded physical name


def test_the_limit_is_the_preflights_answer_and_the_waits_come_from_configuration(
    synthesized: Synthesized,
) -> None:
    config = synthesized.config
    table_id, _ = _table(synthesized)
    preflight_id, preflight = _by_path(synthesized, "Custom::BedrockPreflight", "/Guards/Preflight/Default")
    variables = _queue_function(synthesized)["Properties"]["Environment"]["Variables"]
    # The account's quota (or max_concurrent_jobs, never above it), read at deploy time
    setting = {f: variables[TrainingQueueSettings.variable(f)] for f in (
        "max_concurrent_jobs", "queue_table", "max_queue_seconds", "wait_cap_seconds", "lease_seconds",
    )}  # fmt: skip
    assert setting["max_concurrent_jobs"] == {"Fn::GetAtt": [preflight_id, "MaxConcurrentJobs"]}
    assert preflight["Properties"]["MaxConcurrentJobs"] == ""  # not configured: the quota decides
    assert setting["queue_table"] == {"Ref": table_id}
    assert setting["max_queue_seconds"] == str(config.max_queue_hours * 3600)
    assert setting["wait_cap_seconds"] == str(max(600, config.job_poll_seconds))
    assert int(setting["lease_seconds"]) > 2 * int(setting["wait_cap_seconds"])


def _table_arn(synth: Synthesized) -> dict[str, Any]:
    return {"Fn::GetAtt": [_table(synth)[0], "Arn"]}


def test_the_queue_function_reads_and_writes_only_its_table(synthesized: Synthesized) -> None:
    statements = _statements(synthesized, "/TrainingQueue/Role/Resource")
    key_id, _ = _by_path(synthesized, "AWS::KMS::Key", "/Key/Resource")
    assert statements["UseTrainingQueue"]["Resource"] == _table_arn(synthesized)
    # the queue is one item: read it, write it back if nobody else did meanwhile
    assert sorted(statements["UseTrainingQueue"]["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    key = statements["UseTrainingQueueKey"]
    assert key["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Condition"]["StringEquals"]["kms:ViaService"] == "dynamodb.us-west-2.amazonaws.com"
    # A lapsed lease is checked against the job's real status; only reads of jobs
    assert statements["CheckLapsedLeasesAgainstJobs"]["Action"] == "bedrock:GetModelCustomizationJob"
    # Counting the account's running jobs is the only '*' (the action has no resource type)
    assert statements["CountRunningJobs"]["Resource"] == "*"
    assert statements["CountRunningJobs"]["Action"] == "bedrock:ListModelCustomizationJobs"
    assert statements["PublishQueueNotices"]["Action"] == "sns:Publish"


def test_the_clean_ups_may_give_a_slot_back_and_nothing_more(synthesized: Synthesized) -> None:
    for role in ("/CleanUpFailedRun/Role/Resource", "/CleanUpEndedExecution/Role/Resource"):
        statement = _statements(synthesized, role)["GiveBackTrainingSlot"]
        assert statement["Resource"] == _table_arn(synthesized), role
        assert sorted(statement["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem"], role
    for path in ("/CleanUpFailedRun/Function/Resource", "/CleanUpEndedExecution/Function/Resource"):
        variables = _by_path(synthesized, "AWS::Lambda::Function", path)[1]["Properties"]["Environment"]
        table_variable = CleanUpSettings.variable("queue_table")
        assert variables["Variables"][table_variable] == {"Ref": _table(synthesized)[0]}, path


def test_the_cli_finds_the_queue_through_a_stack_output(synthesized: Synthesized) -> None:
    output = synthesized.json["Outputs"]["TrainingQueueTableName"]
    assert output["Value"] == {"Ref": _table(synthesized)[0]}
