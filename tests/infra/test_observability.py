"""Operating the pipeline: each alarm's metric, threshold and action; the dashboard's widgets; the saved
query of one run's logs. Resources are found by construct path, never by hashed logical ID."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from bedrock_finetune import metrics
from stacks.application import build_app, cdk_json_context
from tests.conftest import Synthesized

OPS_TOPIC = "arn:aws:sns:us-west-2:111122223333:ops-alerts"
#: The functions that serve runs (construct ids): the state machines' tasks.
RUN_FUNCTIONS = (
    "ValidateDataset",
    "StartCustomizationJob",
    "WaitForJobToEnd",
    "CollectTrainingResults",
    "PlanServing",
    "RequestApproval",
    "ServeModel",
    "GetEndpointStatus",
    "RecordLineVersion",
    "CleanUpFailedRun",
    "Notify",
    "TrainingQueue",
    "EvaluateCandidate",
    "CleanUpEndedExecution",
)


def _logical_id(synth: Synthesized, path: str) -> str:
    """The logical ID of the CloudFormation resource of the construct at ``path`` (below the stack)."""
    construct = synth.stack.node.find_child(path.split("/", maxsplit=1)[0])
    for part in path.split("/")[1:]:
        construct = construct.node.find_child(part)
    return str(synth.stack.get_logical_id(construct.node.default_child))


def _ref(synth: Synthesized, path: str) -> dict[str, str]:
    return {"Ref": _logical_id(synth, path)}


def _alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm name (its construct id) -> its properties in the template."""
    observability = synth.stack.node.find_child("Observability")
    return {
        name: synth.json["Resources"][_logical_id(synth, f"Observability/{name}")]["Properties"]
        for name in observability.alarms
    }


@dataclass(frozen=True)
class Expected:
    namespace: str
    metric: str
    dimensions: dict[str, Any]
    statistic: str
    threshold: float
    comparison: str
    period: int = 300


AT_LEAST_ONE = (1, "GreaterThanOrEqualToThreshold")
ANY = (0, "GreaterThanThreshold")


def _expected(synth: Synthesized) -> dict[str, Expected]:
    pipeline = {"StateMachineArn": _ref(synth, "Workflow/StateMachine")}
    clean_up_machine = {"StateMachineArn": _ref(synth, "CleanUpEndedExecution/CleanUpMachine")}
    service = {metrics.SERVICE_DIMENSION: metrics.SERVICE}

    def errors(path: str) -> Expected:
        return Expected("AWS/Lambda", "Errors", {"FunctionName": _ref(synth, path)}, "Sum", *AT_LEAST_ONE)

    def failed_invocations(path: str) -> Expected:
        return Expected(
            "AWS/Events", "FailedInvocations", {"RuleName": _ref(synth, path)}, "Sum", *AT_LEAST_ONE
        )

    def inventory(name: str) -> Expected:
        return Expected(metrics.NAMESPACE, name, service, "Maximum", *ANY, period=3600)

    return {
        "RunsFailed": Expected("AWS/States", "ExecutionsFailed", pipeline, "Sum", *AT_LEAST_ONE),
        "RunsTimedOut": Expected("AWS/States", "ExecutionsTimedOut", pipeline, "Sum", *AT_LEAST_ONE),
        "EndedRunCleanUpFailed": Expected(
            "AWS/States", "ExecutionsFailed", clean_up_machine, "Sum", *AT_LEAST_ONE
        ),
        "EndedRunCleanUpTimedOut": Expected(
            "AWS/States", "ExecutionsTimedOut", clean_up_machine, "Sum", *AT_LEAST_ONE
        ),
        "CleanUpFailedRunErrors": errors("CleanUpFailedRun/Function"),
        "CleanUpEndedExecutionErrors": errors("CleanUpEndedExecution/Function"),
        "TeardownErrors": errors("Guards/TeardownFunction/Function"),
        "TeardownWaitErrors": errors("Guards/TeardownWaitFunction/Function"),
        "TriggerDeadLettersWaiting": Expected(
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": {"Fn::GetAtt": [_logical_id(synth, "TriggerDeadLetters"), "QueueName"]}},
            "Maximum",
            *ANY,
        ),
        "UploadTriggerFailedInvocations": failed_invocations("Trigger/OnTrainingUpload"),
        "EndedRunTriggerFailedInvocations": failed_invocations("OnExecutionEnded"),
        "EndpointsPastTtl": inventory(metrics.ENDPOINTS_PAST_TTL),
        "ApprovalsWaitingOverADay": inventory(metrics.APPROVALS_WAITING_OVER_A_DAY),
    }


def test_each_alarm_watches_its_metric_and_notifies_the_pipeline_topic(synthesized: Synthesized) -> None:
    """Given the stack as cdk.json configures it (no ops topic), then each alarm has exactly its metric,
    statistic, period, threshold and comparison, treats missing data as nothing happening, and notifies
    the notification topic; and there is no alarm beyond these."""
    alarms = _alarms(synthesized)
    expected = _expected(synthesized)
    assert sorted(alarms) == sorted(expected)
    topic = _ref(synthesized, "Notifications/Topic")
    for name, want in expected.items():
        alarm = alarms[name]
        assert alarm["Namespace"] == want.namespace, name
        assert alarm["MetricName"] == want.metric, name
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == want.dimensions, name
        assert (alarm["Statistic"], alarm["Period"]) == (want.statistic, want.period), name
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (want.threshold, want.comparison), name
        assert (alarm["EvaluationPeriods"], alarm["TreatMissingData"]) == (1, "notBreaching"), name
        assert alarm["AlarmActions"] == [topic], name


def test_each_alarm_says_what_it_means_and_what_to_do(synthesized: Synthesized) -> None:
    descriptions = {name: alarm["AlarmDescription"] for name, alarm in _alarms(synthesized).items()}
    assert len(set(descriptions.values())) == len(descriptions), "two alarms share a description"
    for name, description in descriptions.items():
        assert 80 < len(description) <= 1024, name  # 1024: CloudWatch's limit


def test_cloudwatch_may_publish_the_alarms_to_the_encrypted_topic(synthesized: Synthesized) -> None:
    """Given alarms on the pipeline's KMS-encrypted topic, then the topic's policy lets this account's
    alarms publish and the key's policy lets CloudWatch use the key for SNS topics only."""
    cloudwatch = {"Service": "cloudwatch.amazonaws.com"}
    (policy,) = synthesized.resources("AWS::SNS::TopicPolicy").values()
    (publish,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Principal"] == cloudwatch
    ]
    assert (publish["Effect"], publish["Action"]) == ("Allow", "sns:Publish")
    assert publish["Resource"] == _ref(synthesized, "Notifications/Topic")
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    alarm_arns = publish["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert alarm_arns[-1].endswith(":alarm:*") and ":cloudwatch:" in alarm_arns[2]

    key = synthesized.json["Resources"][_logical_id(synthesized, "Key")]
    (use,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Principal"] == cloudwatch]
    assert sorted(use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    topics = use["Condition"]["StringLike"]["kms:EncryptionContext:aws:sns:topicArn"]["Fn::Join"][1]
    assert ":sns:us-west-2:" in topics and topics[-1] == ":*"


def test_the_teardown_alarms_outlive_the_teardown(synthesized: Synthesized) -> None:
    """On stack deletion CloudFormation deletes the teardown resource (which runs the teardown) before
    what it depends on: its alarms still exist to report its errors."""
    teardown = synthesized.json["Resources"][_logical_id(synthesized, "Guards/Teardown")]
    for name in ("TeardownErrors", "TeardownWaitErrors"):
        assert _logical_id(synthesized, f"Observability/{name}") in teardown["DependsOn"]


@pytest.fixture(scope="module")
def with_ops_topic(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from aws_cdk.assertions import Template

    app, stack, config = build_app(
        cdk_json_context(ops_topic_arn=OPS_TOPIC),
        environment={},
        outdir=str(tmp_path_factory.mktemp("cdk-ops")),
    )
    app.synth()
    template = Template.from_stack(stack)
    return Synthesized(stack=stack, config=config, template=template, json=template.to_json())


def test_an_ops_topic_receives_every_alarm_and_the_pipeline_topic_none(with_ops_topic: Synthesized) -> None:
    """Given ops_topic_arn, then every alarm notifies that topic only, and the pipeline's topic and key
    are left as they were (no statement for CloudWatch)."""
    alarms = _alarms(with_ops_topic)
    assert sorted(alarms) == sorted(_expected(with_ops_topic))
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [OPS_TOPIC], name
    assert "cloudwatch.amazonaws.com" not in json.dumps(with_ops_topic.json["Resources"])


# ---- the dashboard ----


def _dashboard(synth: Synthesized) -> dict[str, Any]:
    """The dashboard body as JSON, each token (Ref, GetAtt) replaced by ``<logical id>`` or
    ``<logical id>.<attribute>``."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = ""
    for part in parts:
        if isinstance(part, str):
            text += part
        elif "Ref" in part:
            text += f"<{part['Ref']}>"
        else:
            logical_id, attribute = part["Fn::GetAtt"]
            text += f"<{logical_id}.{attribute}>"
    return dict(json.loads(text))


def _widget(body: dict[str, Any], title: str) -> dict[str, Any]:
    (widget,) = [w for w in body["widgets"] if w["properties"].get("title") == title]
    return dict(widget["properties"])


def _plain_metrics(widget: dict[str, Any]) -> list[tuple[str, ...]]:
    """(namespace, name, dimension, value, ...) of each metric line; expressions left out."""
    return [tuple(line[:-1]) for line in widget["metrics"] if isinstance(line[0], str)]


def _expressions(widget: dict[str, Any]) -> list[str]:
    return [line[0]["expression"] for line in widget["metrics"] if isinstance(line[0], dict)]


def test_the_dashboard_shows_runs_started_succeeded_and_failed(synthesized: Synthesized) -> None:
    body = _dashboard(synthesized)
    machine = f"<{_logical_id(synthesized, 'Workflow/StateMachine')}>"
    totals = _widget(body, "Runs in the time range")
    assert totals["setPeriodToTimeRange"] is True
    per_hour = _widget(body, "Runs per hour")
    for widget in (totals, per_hour):
        shown = _plain_metrics(widget)
        for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed"):
            assert ("AWS/States", metric, "StateMachineArn", machine) in shown


def test_the_dashboard_shows_the_time_in_each_stage(synthesized: Synthesized) -> None:
    """Execution time, and the duration of every task's function (each workflow task and the clean-up
    of ended runs)."""
    body = _dashboard(synthesized)
    machine = f"<{_logical_id(synthesized, 'Workflow/StateMachine')}>"
    execution = _widget(body, "Execution time (minutes)")
    assert ("AWS/States", "ExecutionTime", "StateMachineArn", machine) in _plain_metrics(execution)
    tasks = _widget(body, "Time in each task (Lambda duration, ms)")
    durations = [
        line for line in _plain_metrics(tasks) if line[:3] == ("AWS/Lambda", "Duration", "FunctionName")
    ]
    shown = {line[3] for line in durations}
    assert shown == {f"<{_logical_id(synthesized, f'{name}/Function')}>" for name in RUN_FUNCTIONS}


def test_the_dashboard_shows_validation_errors_by_code_and_the_loss_of_recent_runs(
    synthesized: Synthesized,
) -> None:
    """Search expressions over exactly the dimensions the handlers emit (tests/handlers/test_observability.py
    checks the EMF side)."""
    body = _dashboard(synthesized)
    (errors,) = _expressions(_widget(body, "Validation errors by code"))
    assert errors.startswith(f"SEARCH('{{{metrics.NAMESPACE},{metrics.CODE_DIMENSION},service}}")
    assert f'MetricName="{metrics.VALIDATION_ERRORS}"' in errors and "'Sum'" in errors
    losses = _widget(body, "Final loss of recent runs (by run)")
    assert losses["view"] == "bar" and losses["setPeriodToTimeRange"] is True
    expressions = _expressions(losses)
    for name in (metrics.FINAL_TRAINING_LOSS, metrics.FINAL_VALIDATION_LOSS):
        (search,) = [e for e in expressions if f'MetricName="{name}"' in e]
        assert search.startswith(f"SEARCH('{{{metrics.NAMESPACE},{metrics.RUN_DIMENSION},service}}")


def test_the_dashboard_shows_endpoints_in_service_and_their_hourly_cost(synthesized: Synthesized) -> None:
    widget = _widget(_dashboard(synthesized), "Endpoints in service, and their estimated cost")
    lines = {line[1]: line for line in widget["metrics"]}
    service = ("service", metrics.SERVICE)
    assert tuple(lines[metrics.ENDPOINTS_IN_SERVICE][:-1]) == (
        metrics.NAMESPACE,
        metrics.ENDPOINTS_IN_SERVICE,
        *service,
    )
    cost = lines[metrics.ENDPOINT_HOURLY_COST_ESTIMATE]
    assert tuple(cost[:-1]) == (metrics.NAMESPACE, metrics.ENDPOINT_HOURLY_COST_ESTIMATE, *service)
    assert cost[-1]["yAxis"] == "right"
    assert widget["yAxis"]["right"]["label"] == "USD per hour"


def test_the_dashboard_shows_the_training_queues_length_and_the_slots_in_use(
    synthesized: Synthesized,
) -> None:
    """The metrics the TrainingQueue handler records at every Take, with the dimensions it gives them."""
    widget = _widget(_dashboard(synthesized), "Training queue: runs in line and slots in use")
    lines = {line[1]: line for line in widget["metrics"]}
    for name, label in (
        (metrics.QUEUE_LENGTH, "Runs in line"),
        (metrics.TRAINING_SLOTS_IN_USE, "Training slots in use"),
    ):
        assert tuple(lines[name][:-1]) == (metrics.NAMESPACE, name, "service", metrics.SERVICE)
        assert lines[name][-1]["label"] == label
        assert lines[name][-1]["stat"] == "Maximum"


def test_the_dashboard_shows_every_alarm_state(synthesized: Synthesized) -> None:
    alarms = _widget(_dashboard(synthesized), "Alarms")["alarms"]
    expected = {f"<{_logical_id(synthesized, f'Observability/{name}')}.Arn>" for name in _alarms(synthesized)}
    assert sorted(alarms) == sorted(expected)


# ---- the saved query ----


def test_the_saved_query_finds_one_runs_lines_in_every_log_group_of_the_pipeline(
    synthesized: Synthesized,
) -> None:
    """Given the pipeline's log groups (the state machines' and each run function's), then the saved
    query reads all of them and filters on the run or the execution (the correlation id)."""
    (query,) = synthesized.resources("AWS::Logs::QueryDefinition").values()
    properties = query["Properties"]
    assert properties["Name"] == {"Fn::Join": ["", [{"Ref": "AWS::StackName"}, "/one-run"]]}
    expected = [_ref(synthesized, "PipelineLogs")] + [_ref(synthesized, f"{f}/Logs") for f in RUN_FUNCTIONS]
    assert sorted(properties["LogGroupNames"], key=str) == sorted(expected, key=str)
    query_string = properties["QueryString"]
    assert '| filter run = "RUN" or correlation_id = "EXECUTION"' in query_string
    for field in ("run", "version", "execution", "message"):
        assert field in query_string.splitlines()[0]
