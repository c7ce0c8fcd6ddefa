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
    assert path == ["Identify run", "Upload is a run?"]
    assert states["Upload is a run?"]["Default"] == "Not a run"
    (is_a_run,) = states["Upload is a run?"]["Choices"]
    path = ["Identify run", is_a_run["Next"]]
    while states[path[-1]]["Type"] not in ("Choice", "Succeed", "Fail"):
        path.append(states[path[-1]]["Next"])
    assert path == [
        "Identify run",
        "Join the training queue",
        "Let uploads settle",
        "Validate dataset",
        "Take a training slot",
        "Training slot taken?",
    ]
    (granted,) = states["Training slot taken?"]["Choices"]
    assert granted == {
        "Variable": "$.queue.status",
        "StringEquals": "granted",
        "Next": "Start customization job",
    }
    assert states["Training slot taken?"]["Default"] == "Waiting for a training slot"
    assert states["Waiting for a training slot"]["Next"] == "Take a training slot"
    assert states["Start customization job"]["Next"] == "Wait for the job to end"
    # The job's end wakes the wait (a failed or stopped job fails it: see the next test), and gives the
    # training slot back as it does (JobEnded): no Choice on the status, no release state
    assert states["Wait for the job to end"]["Next"] == "Collect training results"
    # A quality gate not met fails Collect training results (QualityGateNotMet): no Choice either
    assert states["Collect training results"]["Next"] == "Plan serving"
    assert states["Plan serving"]["Next"] == "Approval needed?"
    (needed,) = states["Approval needed?"]["Choices"]
    assert needed == {
        "Variable": "$.serving.approvalNeeded",
        "BooleanEquals": True,
        "Next": "Request approval",
    }
    # The line's current model (or the base model) is scored before the candidate is swapped in.
    assert states["Approval needed?"]["Default"] == "Evaluate current model"
    assert states["Request approval"]["Next"] == "Evaluate current model"
    assert states["Evaluate current model"]["Next"] == "Current model scored?"
    assert states["Current model scored?"]["Choices"][0]["Next"] == "Serve model"
    assert states["Serve model"]["Next"] == "Wait for endpoint"
    assert states["Wait for endpoint"]["Next"] == "Get endpoint status"
    assert states["Get endpoint status"]["Next"] == "Endpoint ready?"
    assert states["Endpoint ready?"]["Default"] == "Wait for endpoint"
    by_state = {c["StringEquals"]: c["Next"] for c in states["Endpoint ready?"]["Choices"]}
    assert by_state == {
        "failed": "Endpoint failed",
        "ready": "Evaluate candidate",
        "superseded": "Superseded by a later version",
    }
    # A later version (or a rollback) took the endpoint meanwhile: kept, with the status's reason.
    assert states["Superseded by a later version"]["Next"] == "Not served"
    assert states["Superseded by a later version"]["Parameters"]["why.$"] == "$.endpoint.failureMessage"
    assert states["Evaluate candidate"]["Next"] == "Candidate scored?"
    # Scored and through the evaluation gate: served; scored and not: kept (the gate is this Choice)
    promoted, kept = states["Candidate scored?"]["Choices"]
    assert promoted == {
        "And": [
            {"Variable": "$.evaluation.done", "BooleanEquals": True},
            {"Variable": "$.evaluation.passed", "BooleanEquals": True},
        ],
        "Next": "Record served version",
    }
    assert kept == {"Variable": "$.evaluation.done", "BooleanEquals": True, "Next": "Evaluation gate not met"}
    assert states["Candidate scored?"]["Default"] == "Evaluate candidate"
    assert states["Record served version"]["Next"] == "Notify success"
    assert states["Notify success"]["Next"] == "Model in service"
    assert states["Model in service"]["Type"] == "Succeed"


def test_buying_waits_for_an_answer_and_an_unanswered_request_buys_nothing(
    synthesized: Synthesized, definition: dict[str, Any]
) -> None:
    """Given Request approval, then it waits on a task token for at most approval_timeout_hours; a
    rejection or the timeout goes to Not served (the model is kept, nothing bought), never to Serve model."""
    states = definition["States"]
    request = states["Request approval"]
    assert request["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert request["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    assert request["TimeoutSeconds"] == synthesized.config.approval_timeout_hours * 3600
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in request["Catch"]}
    assert catches == {
        ("ApprovalRejected",): "Approval rejected",
        ("States.Timeout",): "Approval expired",
        ("States.ALL",): "Request approval failed",
    }
    assert states["Approval rejected"]["Next"] == states["Approval expired"]["Next"] == "Not served"
    assert states["Not served"]["Next"] == "Record kept version"
    assert states["Record kept version"]["Parameters"]["served"] is False
    assert states["Record kept version"]["Next"] == "Notify model kept"
    assert states["Notify model kept"]["Parameters"]["outcome"] == "kept"
    assert states["Notify model kept"]["Next"] == "Model kept, not served"
    assert states["Model kept, not served"]["Type"] == "Succeed"


def test_the_job_is_waited_for_with_a_task_token_bounded_by_max_job_hours(
    synthesized: Synthesized, definition: dict[str, Any]
) -> None:
    """Given Wait for the job to end, then it waits on a task token (no polling loop) for at most
    max_job_hours; a timeout, like any error, is recorded and goes through the clean-up."""
    states = definition["States"]
    wait = states["Wait for the job to end"]
    assert wait["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert wait["Parameters"]["Payload"]["taskToken.$"] == "$$.Task.Token"
    assert wait["Parameters"]["Payload"]["job.$"] == "$.job"
    assert wait["ResultPath"] == "$.job"
    assert wait["TimeoutSeconds"] == synthesized.config.max_job_hours * 3600
    # A job that failed or was stopped fails the wait with its own error (JobEnded's SendTaskFailure),
    # recorded as the customization job's failure with Bedrock's message as the cause
    catches = {tuple(c["ErrorEquals"]): (c["Next"], c["ResultPath"]) for c in wait["Catch"]}
    assert catches == {
        ("CustomizationJobFailed",): ("Customization job failed", "$.caught"),
        ("CustomizationJobStopped",): ("Customization job stopped", "$.caught"),
        ("States.ALL",): ("Wait for the job to end failed", "$.caught"),
    }
    for name in ("Customization job failed", "Customization job stopped"):
        assert states[name]["Parameters"] == {
            "step": "Customization job",
            "error.$": "$.caught.Error",
            "cause.$": "$.caught.Cause",
        }
        assert states[name]["ResultPath"] == "$.failure"
        assert states[name]["Next"] == "Begin clean-up"
    assert states["Wait for the job to end failed"]["Next"] == "Begin clean-up"
    assert not any(s["Type"] == "Wait" and "job" in name.lower() for name, s in states.items())


def test_a_busy_endpoint_is_retried_patiently(definition: dict[str, Any]) -> None:
    retries = {tuple(r["ErrorEquals"]): r for r in definition["States"]["Serve model"]["Retry"]}
    busy = retries[("EndpointBusy",)]
    assert (busy["IntervalSeconds"], busy["MaxAttempts"], busy["MaxDelaySeconds"]) == (120, 10, 1800)


def test_waits_come_from_configuration(synthesized: Synthesized, definition: dict[str, Any]) -> None:
    config = synthesized.config
    assert definition["States"]["Let uploads settle"]["Seconds"] == config.settle_seconds
    # Serve model and Get endpoint status choose each wait of the endpoint's loop (back-off)
    assert definition["States"]["Wait for endpoint"]["SecondsPath"] == "$.endpoint.waitSeconds"
    assert definition["States"]["Wait for the job to end"]["TimeoutSeconds"] == config.max_job_hours * 3600
    assert definition["TimeoutSeconds"] == config.execution_timeout_hours * 3600
    # The queue chooses each wait (back-off); the definition only reads it
    assert definition["States"]["Waiting for a training slot"]["SecondsPath"] == "$.queue.waitSeconds"


def test_every_task_retries_transient_errors_only_and_catches_everything(definition: dict[str, Any]) -> None:
    tasks = {name: s for name, s in definition["States"].items() if s["Type"] == "Task"}
    # 11 pipeline tasks; Notify failure/success/model kept share a function, Record served/kept too;
    # and the training queue's two states
    assert len(tasks) == 18  # with Evaluate current model and Evaluate candidate (provisioned line)
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
        caught = [c["ErrorEquals"] for c in task["Catch"]]
        if name == "Request approval":  # its answers are caught too (see the test above)
            assert caught[-1] == ["States.ALL"]
            continue
        if name == "Start customization job":  # Bedrock's job quota: wait in the queue, not fail
            assert caught == [["BedrockQuotaExceeded"], ["States.ALL"]], name
        elif name == "Collect training results":  # a quality gate not met: its own failure step
            assert caught == [["QualityGateNotMet"], ["States.ALL"]], name
        elif name == "Wait for the job to end":  # a job that failed or was stopped (test above)
            assert caught[-1] == ["States.ALL"], name
        else:
            assert caught == [["States.ALL"]], name
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
            "Wait for the job to end failed",
            "Collect training results failed",
            "Plan serving failed",
            "Request approval failed",
            "Serve model failed",
            "Get endpoint status failed",
            "Evaluate current model failed",
            "Evaluate candidate failed",
            "Record served version failed",
            "Record kept version failed",
            "Join the training queue failed",
            "Take a training slot failed",
            "Customization job failed",
            "Customization job stopped",
            "Quality gate not met",
            "Endpoint failed",
            "Not a run",
        ]
    )
    for name in failure_records:
        if name == "Not a run":  # nothing was started: straight to the notice
            assert states[name]["Next"] == "Notify failure"
            continue
        assert states[name]["Next"] == "Begin clean-up", name
    assert states["Begin clean-up"] == {
        "Type": "Pass",
        "Parameters": {"attempt": 0},
        "ResultPath": "$.cleanup",
        "Next": "Clean up failed run",
    }
    assert states["Clean up failed run"]["Parameters"]["previous.$"] == "$.cleanup"
    assert states["Clean up failed run"]["Next"] == "Clean-up settled?"
    (retry,) = states["Clean-up settled?"]["Choices"]
    assert retry == {
        "Variable": "$.cleanup.retry",
        "BooleanEquals": True,
        "Next": "Wait before cleaning up again",
    }
    assert states["Wait before cleaning up again"]["Next"] == "Clean up failed run"
    assert states["Clean-up settled?"]["Default"] == "Notify failure"
    assert states["Clean-up failed"]["Next"] == "Notify failure"
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


def test_a_deeper_key_is_not_a_run_and_touches_nothing(definition: dict[str, Any]) -> None:
    """datasets/a/b/train.jsonl would read as run "a": it ends before anything is read or bought."""
    states = definition["States"]
    assert states["Identify run"]["Parameters"]["run"]["depth.$"] == (
        "States.ArrayLength(States.StringSplit($.key, '/'))"
    )
    (is_a_run,) = states["Upload is a run?"]["Choices"]
    assert is_a_run["And"] == [
        {"Variable": "$.run.depth", "NumericEquals": 3},
        {"Variable": "$.run.key", "StringMatches": "datasets/*/train.jsonl"},
    ]
    assert states["Not a run"]["Parameters"]["error"] == "NotARunKey"
    assert states["Not a run"]["Next"] == "Notify failure"


def test_clean_up_of_ended_executions_waits_for_bedrock_and_always_notifies(synthesized: Synthesized) -> None:
    """Given the clean-up machine of ended executions, then it retries while a throughput settles, and
    every path but "handled by the run's own chain" ends in the notice."""
    (machine,) = (
        m
        for m in synthesized.resources("AWS::StepFunctions::StateMachine").values()
        if "/CleanUpEndedExecution/" in m["Metadata"]["aws:cdk:path"]
    )
    states = json.loads(_render(machine["Properties"]["DefinitionString"]))["States"]
    assert states["Clean up ended run"]["Next"] == "Already handled?"
    assert states["Already handled?"]["Default"] == "Clean-up settled?"
    (retry,) = states["Clean-up settled?"]["Choices"]
    assert retry["Next"] == "Wait for Bedrock to settle"
    assert states["Wait for Bedrock to settle"]["Seconds"] == synthesized.config.cleanup_retry_seconds
    assert states["Wait for Bedrock to settle"]["Next"] == "Clean up ended run"
    assert states["Clean-up settled?"]["Default"] == "Notify ended run"
    (catch,) = states["Clean up ended run"]["Catch"]
    assert states[catch["Next"]]["Next"] == "Notify ended run"
    payload = states["Notify ended run"]["Parameters"]
    assert payload["executionArn.$"] == "$.detail.executionArn"  # the ended execution, not this one


def test_state_machine_logs_everything_and_traces(synthesized: Synthesized) -> None:
    machine = _pipeline_machine(synthesized)
    assert machine["Properties"]["StateMachineType"] == "STANDARD"
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    logging = machine["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True


@pytest.mark.parametrize(
    ("context", "absent", "end"),
    [
        ({"serving": "none"}, {"Plan serving", "Request approval", "Serve model"}, "Record trained version"),
        ({"base_model_id": "amazon.nova-lite-v1:0:300k"}, set(), "Plan serving"),
    ],
)
def test_the_serving_mode_shapes_the_machine(
    tmp_path_factory: pytest.TempPathFactory, context: dict[str, str], absent: set[str], end: str
) -> None:
    """Given serving = none, then the run ends after the training results (nothing is planned or
    bought); given a Nova model (auto: on demand), then it plans serving, and approval is asked only by
    policy."""
    from iam_review.synth import synthesize

    (stack,) = synthesize(str(tmp_path_factory.mktemp("cdk-serving")), **context)
    (machine,) = (
        m
        for m in stack.template["Resources"].values()
        if m["Type"] == "AWS::StepFunctions::StateMachine" and "/Workflow/" in m["Metadata"]["aws:cdk:path"]
    )
    states = json.loads(_render(machine["Properties"]["DefinitionString"]))["States"]
    assert states["Collect training results"]["Next"] == end
    assert not absent & set(states)
    if end == "Record trained version":
        assert states["Record trained version"]["Next"] == "Notify success"
        assert states["Notify success"]["Next"] == "Model trained"


def test_a_bedrock_quota_error_on_start_waits_in_the_queue_instead_of_failing(
    definition: dict[str, Any],
) -> None:
    """Given Bedrock refuses the job for a quota (another tool holds the account's jobs), then the run
    goes back to the queue (keeping its slot, with the refusal noted for the back-off and the notice);
    every other error still fails the run."""
    states = definition["States"]
    quota, everything = states["Start customization job"]["Catch"]
    assert quota == {
        "ErrorEquals": ["BedrockQuotaExceeded"],
        "ResultPath": "$.queue.refusal",
        "Next": "Take a training slot",
    }
    assert everything["Next"] == "Start customization job failed"


def test_the_queue_states_carry_the_run_and_its_place(definition: dict[str, Any]) -> None:
    states = definition["States"]
    join = states["Join the training queue"]["Parameters"]
    # the ticket is ordered by the execution's start time: upload order
    assert join["startedAt.$"] == "$$.Execution.StartTime"
    assert (join["action"], join["run.$"], states["Join the training queue"]["ResultPath"]) == (
        "join",
        "$.run",
        "$.queue",
    )
    take = states["Take a training slot"]
    assert (take["Parameters"]["action"], take["Parameters"]["queue.$"], take["ResultPath"]) == (
        "take",
        "$.queue",
        "$.queue",
    )
    # Join and Take run one function; its errors are the pipeline's typed errors. No state gives the
    # slot back: the job's end does (JobEnded), and the clean-ups on every other way out
    functions = {states[n]["Resource"] for n in ("Join the training queue", "Take a training slot")}
    assert len(functions) == 1
    assert not any("release" in str(state.get("Parameters", {}).get("action")) for state in states.values())


@pytest.mark.parametrize("policy", ["wait", "fail"])
def test_a_deployment_refused_for_its_quota_waits_only_under_the_wait_policy(
    tmp_path_factory: pytest.TempPathFactory, policy: str
) -> None:
    """Given on-demand serving (Nova) and deployment_quota_policy = wait, then a quota refusal of Serve
    model goes to Handle deployment quota (which decides the back-off or fails) -> Waiting for a
    deployment quota (its seconds from that decision) -> Serve model again, one round within the history
    events the config check counts; and ServeModel may publish the notice. Given fail, Serve model fails
    the run at once as before, and may publish nothing."""
    from bedrock_finetune.quota_wait import EVENTS_PER_WAIT_ROUND
    from iam_review.synth import synthesize
    from stacks.config import EVENTS_PER_STATE

    (stack,) = synthesize(
        str(tmp_path_factory.mktemp(f"cdk-deployment-{policy}")),
        base_model_id="amazon.nova-lite-v1:0:300k",
        deployment_quota_policy=policy,
    )
    resources = stack.template["Resources"]
    (machine,) = (
        m
        for m in resources.values()
        if m["Type"] == "AWS::StepFunctions::StateMachine" and "/Workflow/" in m["Metadata"]["aws:cdk:path"]
    )
    states = json.loads(_render(machine["Properties"]["DefinitionString"]))["States"]
    (serve_role_policy,) = (
        r
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and "/ServeModel/" in r["Metadata"]["aws:cdk:path"]
    )
    sids = {s.get("Sid") for s in serve_role_policy["Properties"]["PolicyDocument"]["Statement"]}
    catches = states["Serve model"]["Catch"]
    if policy == "fail":
        assert [c["Next"] for c in catches] == ["Serve model failed"]
        assert not {"Handle deployment quota", "Waiting for a deployment quota"} & set(states)
        assert "PublishDeploymentQuotaNotices" not in sids
        return
    quota, everything = catches
    assert quota == {
        "ErrorEquals": ["BedrockQuotaExceeded"],
        "ResultPath": "$.deploymentQuota.refusal",
        "Next": "Handle deployment quota",
    }
    assert everything["Next"] == "Serve model failed"
    handle = states["Handle deployment quota"]
    assert (handle["Parameters"]["quota.$"], handle["ResultPath"]) == (
        "$.deploymentQuota",
        "$.deploymentQuota",
    )
    assert handle["Next"] == "Waiting for a deployment quota"
    # QuotaWaitExpired (after max_deployment_wait_hours) fails the run through the failure chain
    assert handle["Catch"][-1]["Next"] == "Handle deployment quota failed"
    wait = states["Waiting for a deployment quota"]
    assert (wait["SecondsPath"], wait["Next"]) == ("$.deploymentQuota.waitSeconds", "Serve model")
    loop = ["Serve model", "Handle deployment quota", "Waiting for a deployment quota"]
    assert sum(EVENTS_PER_STATE[states[name]["Type"]] for name in loop) <= EVENTS_PER_WAIT_ROUND
    assert {"PublishDeploymentQuotaNotices", "EncryptDeploymentQuotaNoticesViaSns"} <= sids
