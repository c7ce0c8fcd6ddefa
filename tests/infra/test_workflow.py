"""The state machine definition: readable states, explicit retries and catches, every failure notified."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bedrock_finetune.errors import PERMANENT_ERRORS
from tests.conftest import Synthesized


def _render(value: Any) -> str:
    """Resolve the intrinsics CDK uses in a definition to readable placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(_render(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    raise AssertionError(f"unexpected intrinsic {value}")


def _pipeline_machine(synthesized: Synthesized) -> dict[str, Any]:
    """The pipeline's state machine (the stack also has the teardown custom resource's waiter)."""
    (machine,) = (
        m
        for m in synthesized.resources("AWS::StepFunctions::StateMachine").values()
        if "/Workflow/" in m["Metadata"]["aws:cdk:path"]
    )
    return machine


@pytest.fixture(scope="module")
def definition(synthesized: Synthesized) -> dict[str, Any]:
    machine = _pipeline_machine(synthesized)
    return json.loads(_render(machine["Properties"]["DefinitionString"]))  # type: ignore[no-any-return]


def test_happy_path_states_in_order(definition: dict[str, Any]) -> None:
    states = definition["States"]
    path = [definition["StartAt"]]
    while states[path[-1]]["Type"] not in ("Choice", "Succeed", "Fail"):
        path.append(states[path[-1]]["Next"])
    assert path == [
        "Identify run",
        "Let uploads settle",
        "Validate dataset",
        "Start customization job",
        "Wait for job",
        "Get customization job",
        "Job status?",
    ]
    assert states["Job status?"]["Default"] == "Wait for job"
    completed = next(c for c in states["Job status?"]["Choices"] if c.get("StringEquals") == "Completed")
    assert completed["Next"] == "Collect training results"
    assert states["Collect training results"]["Next"] == "Quality gate met?"
    assert states["Quality gate met?"]["Choices"][0]["Next"] == "Create provisioned throughput"
    assert states["Create provisioned throughput"]["Next"] == "Wait for throughput"
    assert states["Throughput status?"]["Default"] == "Wait for throughput"
    in_service = next(
        c for c in states["Throughput status?"]["Choices"] if c.get("StringEquals") == "InService"
    )
    assert in_service["Next"] == "Notify success"
    assert states["Notify success"]["Next"] == "Model in service"
    assert states["Model in service"]["Type"] == "Succeed"


def test_waits_come_from_configuration(synthesized: Synthesized, definition: dict[str, Any]) -> None:
    config = synthesized.config
    assert definition["States"]["Let uploads settle"]["Seconds"] == config.settle_seconds
    assert definition["States"]["Wait for job"]["Seconds"] == config.job_poll_seconds
    assert definition["States"]["Wait for throughput"]["Seconds"] == config.throughput_poll_seconds
    assert definition["TimeoutSeconds"] == config.execution_timeout_hours * 3600


def test_every_task_retries_transient_errors_only_and_catches_everything(definition: dict[str, Any]) -> None:
    tasks = {name: s for name, s in definition["States"].items() if s["Type"] == "Task"}
    assert len(tasks) == 9  # 8 pipeline tasks, Notify failure/success share a function
    for name, task in tasks.items():
        retried = [e for r in task["Retry"] for e in r["ErrorEquals"]]
        assert "States.ALL" not in retried, name
        assert "Lambda.TooManyRequestsException" in retried, name
        # Bedrock's and every other AWS service's throttling, 5xx and network errors, in one rule
        (aws_retry,) = (r for r in task["Retry"] if "BedrockTransientError" in r["ErrorEquals"])
        assert aws_retry["ErrorEquals"] == ["BedrockTransientError", "AwsTransientError"], name
        for permanent in PERMANENT_ERRORS:
            assert permanent not in retried, (name, permanent)
        assert aws_retry["BackoffRate"] == 2
        assert aws_retry["JitterStrategy"] == "FULL"
        assert [c["ErrorEquals"] for c in task["Catch"]] == [["States.ALL"]], name
        assert "TimeoutSeconds" in task, name


def test_every_failure_is_cleaned_up_and_notified_before_the_fail_state(definition: dict[str, Any]) -> None:
    states = definition["States"]
    failure_records = [
        name for name, s in states.items() if s["Type"] == "Pass" and s.get("ResultPath") == "$.failure"
    ]
    assert sorted(failure_records) == sorted(
        [
            "Validate dataset failed",
            "Start customization job failed",
            "Get customization job failed",
            "Collect training results failed",
            "Create provisioned throughput failed",
            "Get provisioned throughput failed",
            "Customization job failed",
            "Customization job stopped",
            "Quality gate not met",
            "Provisioned throughput failed",
        ]
    )
    for name in failure_records:
        assert states[name]["Next"] == "Clean up failed run", name
    assert states["Clean up failed run"]["Next"] == "Notify failure"
    assert states["Notify failure"]["Next"] == "Run failed"
    assert states["Run failed"] == {
        "Type": "Fail",
        "ErrorPath": "$.notice.error",
        "CausePath": "$.notice.cause",
    }


def test_a_lost_success_notification_never_triggers_clean_up(definition: dict[str, Any]) -> None:
    (catch,) = definition["States"]["Notify success"]["Catch"]
    assert definition["States"][catch["Next"]]["Type"] == "Fail"


def test_run_name_is_derived_from_the_key(definition: dict[str, Any]) -> None:
    run = definition["States"]["Identify run"]["Parameters"]["run"]
    assert run["run.$"] == "States.ArrayGetItem(States.StringSplit($.key, '/'), 1)"
    assert {"bucket.$", "key.$", "etag.$", "versionId.$"} <= set(run)


def test_state_machine_logs_everything_and_traces(synthesized: Synthesized) -> None:
    machine = _pipeline_machine(synthesized)
    assert machine["Properties"]["StateMachineType"] == "STANDARD"
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    logging = machine["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
