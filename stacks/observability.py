"""What an operator watches: the pipeline's alarms, its dashboard and the saved query for one run's logs.

Every alarm notifies the pipeline's topic, or the ``ops_topic_arn`` topic when it is configured, and its
description says what it means and what to do (the README's "Operating it" lists them too). Metrics:
Step Functions (``AWS/States``), Lambda (``AWS/Lambda``), SQS (``AWS/SQS``) and EventBridge
(``AWS/Events``) publish theirs; the pipeline's own are named in :mod:`bedrock_finetune.metrics`.

- https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
- https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html
- https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bedrock_finetune import metrics
from stacks.bedrock_guards import BedrockGuards
from stacks.tasks import CleanUpEndedExecution
from stacks.trigger import UploadTrigger
from stacks.workflow import WorkflowFunctions

#: Counts (failed executions, function errors, failed invocations) are summed over this period.
ALARM_PERIOD = Duration.minutes(5)
#: The inventory's metrics (bedrock_finetune.metrics) are taken over the period it promises to emit in.
INVENTORY_PERIOD = Duration.seconds(metrics.INVENTORY_PERIOD_SECONDS)
#: The training queue's widget: the longest line in each 5 minutes.
QUEUE_PERIOD = Duration.minutes(5)

_FIND_THE_RUN = (
    "Find the run's log lines with the saved Logs Insights query '<stack>/one-run' (README, Operating it)."
)


class Observability(Construct):
    """The alarms (``self.alarms``, by name), the dashboard and the saved query of the pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        key: kms.IKey,
        ops_topic_arn: str | None,
        state_machine: sfn.StateMachine,
        functions: WorkflowFunctions,
        clean_up: CleanUpEndedExecution,
        guards: BedrockGuards,
        trigger: UploadTrigger,
        dead_letter_queues: Sequence[sqs.IQueue],
        pipeline_logs: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        if ops_topic_arn:
            alarm_topic = sns.Topic.from_topic_arn(self, "OpsTopic", ops_topic_arn)
        else:
            alarm_topic = topic
            _let_alarms_publish(topic, key)
        self._action = cw_actions.SnsAction(alarm_topic)
        self.alarms: dict[str, cw.Alarm] = {}

        self._executions_alarms(state_machine, clean_up.machine)
        self._clean_up_alarms(functions.clean_up_failed_run, clean_up.function, guards)
        for queue in dead_letter_queues:
            self._dead_letter_alarm(queue)
        self._trigger_alarm("UploadTriggerFailedInvocations", trigger.rule, _UPLOAD_NOT_STARTED)
        self._trigger_alarm("EndedRunTriggerFailedInvocations", clean_up.rule, _CLEAN_UP_NOT_STARTED)
        self._inventory_alarms()

        self.dashboard = self._dashboard(state_machine, functions, clean_up)
        self.query = self._query(functions, clean_up, pipeline_logs)

    # ---- alarms ----

    def _alarm(
        self,
        name: str,
        metric: cw.IMetric,
        description: str,
        *,
        threshold: float = 1,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=1,
            # No data means nothing happened: no execution, no invocation, no message, no inventory yet.
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        self.alarms[name] = alarm
        return alarm

    def _executions_alarms(self, state_machine: sfn.StateMachine, clean_up_machine: sfn.StateMachine) -> None:
        self._alarm(
            "RunsFailed",
            state_machine.metric_failed(period=ALARM_PERIOD, statistic="Sum"),
            "A fine-tuning run failed. Its failure notice (on the notification topic) names the step, the "
            "error and the cause, as does the execution's 'Run failed' state. DatasetInvalid is for the "
            "data's owner (reports/<run>/validation.json); quota, permission or Bedrock errors are yours. "
            "If the notice says the clean-up failed or something still bills, run the command it gives.",
        )
        self._alarm(
            "RunsTimedOut",
            state_machine.metric_timed_out(period=ALARM_PERIOD, statistic="Sum"),
            "A fine-tuning execution timed out (max_job_hours + 2 h) before its run finished. The clean-up "
            "state machine stops its job, deletes its no-commitment throughput and sends a notice; check "
            "that notice, and the EndedRunCleanUp alarms. If jobs really take this long, raise "
            "max_job_hours.",
        )
        for status, ended, metric in (
            ("Failed", "failed", clean_up_machine.metric_failed(period=ALARM_PERIOD, statistic="Sum")),
            (
                "TimedOut",
                "timed out",
                clean_up_machine.metric_timed_out(period=ALARM_PERIOD, statistic="Sum"),
            ),
        ):
            self._alarm(
                f"EndedRunCleanUp{status}",
                metric,
                f"The clean-up of an ended run (timed out, aborted, or failed outside its chain) {ended} "
                "before reporting: its job may still run and its throughput may still bill. Open the "
                "CleanUpMachine execution to find the run, then stop its job and delete its provisioned "
                "throughput in Bedrock (both tagged finetune:run=<run>). " + _FIND_THE_RUN,
            )

    def _clean_up_alarms(
        self, clean_up_failed_run: lambda_.IFunction, clean_up_ended: lambda_.IFunction, guards: BedrockGuards
    ) -> None:
        self._alarm(
            "CleanUpFailedRunErrors",
            clean_up_failed_run.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            "The clean-up of a failed run raised an error. Transient errors are retried; a clean-up that "
            "still failed is named in the run's failure notice ('clean-up failed: ...') with what may "
            "still bill. Stop or delete what it lists. " + _FIND_THE_RUN,
        )
        self._alarm(
            "CleanUpEndedExecutionErrors",
            clean_up_ended.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            "The clean-up of an ended execution raised an error. Transient errors are retried; otherwise "
            "its notice says 'clean-up failed' and what may still bill. Stop or delete what it lists. "
            + _FIND_THE_RUN,
        )
        on_event, is_complete = guards.teardown_functions
        for name, function, step in (
            ("TeardownErrors", on_event, "stopping this stack's jobs and deleting its throughput"),
            ("TeardownWaitErrors", is_complete, "waiting until this stack's throughput is gone"),
        ):
            alarm = self._alarm(
                name,
                function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                f"The teardown on stack deletion failed while {step}: the stack is DELETE_FAILED and this "
                "stack's jobs or throughput may still bill. Read the teardown's notice and its function's "
                "log, stop the jobs and delete the throughput it names (tagged finetune:stack with this "
                "stack's ID), then delete the stack again.",
            )
            # Deleted after the teardown has run, so it can still report the teardown's errors.
            guards.teardown.node.add_dependency(alarm)

    def _dead_letter_alarm(self, queue: sqs.IQueue) -> None:
        self._alarm(
            f"{queue.node.id}Waiting",
            queue.metric_approximate_number_of_messages_visible(period=ALARM_PERIOD, statistic="Maximum"),
            "EventBridge could not deliver an event after its retries: an upload that started no run, or "
            "an ended execution whose clean-up never started. Read the message (aws sqs receive-message): "
            "its attributes give the error, its body the event. Fix the cause, then upload train.jsonl "
            "again or start the CleanUpMachine with the event's detail, and delete the message.",
            threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    def _trigger_alarm(self, name: str, rule: events.IRule, description: str) -> None:
        self._alarm(
            name,
            cw.Metric(
                namespace="AWS/Events",
                metric_name="FailedInvocations",
                dimensions_map={"RuleName": rule.rule_name},
                statistic="Sum",
                period=ALARM_PERIOD,
            ),
            description,
        )

    def _inventory_alarms(self) -> None:
        self._alarm(
            "EndpointsPastTtl",
            _pipeline_metric(metrics.ENDPOINTS_PAST_TTL, "Maximum", INVENTORY_PERIOD),
            "A line's endpoint is serving past its time to live and keeps billing by the hour. Find the "
            "line in the inventory function's log, then delete its provisioned throughput, or extend its "
            "time to live on purpose.",
            threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self._alarm(
            "ApprovalsWaitingOverADay",
            _pipeline_metric(metrics.APPROVALS_WAITING_OVER_A_DAY, "Maximum", INVENTORY_PERIOD),
            "A throughput purchase has waited more than a day for its approval. Approve or reject it as "
            "its approval request says, or let it expire (an unanswered request buys nothing).",
            threshold=0,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )

    # ---- dashboard ----

    def _dashboard(
        self, state_machine: sfn.StateMachine, functions: WorkflowFunctions, clean_up: CleanUpEndedExecution
    ) -> cw.Dashboard:
        hourly = Duration.hours(1)
        runs = [
            state_machine.metric_started(label="Started", period=hourly, statistic="Sum"),
            state_machine.metric_succeeded(label="Succeeded", period=hourly, statistic="Sum"),
            state_machine.metric_failed(label="Failed", period=hourly, statistic="Sum"),
            state_machine.metric_timed_out(label="Timed out", period=hourly, statistic="Sum"),
            state_machine.metric_aborted(label="Aborted", period=hourly, statistic="Sum"),
        ]
        execution_time = [
            cw.MathExpression(
                expression=f"{statistic.lower()} / 60000",
                using_metrics={
                    statistic.lower(): state_machine.metric_time(statistic=statistic, period=hourly)
                },
                label=f"{statistic} (minutes)",
            )
            for statistic in ("Average", "Maximum")
        ]
        task_functions = {
            field.name.replace("_", " ").capitalize(): getattr(functions, field.name)
            for field in dataclasses.fields(functions)
            if getattr(functions, field.name) is not None  # a task the configuration leaves out
        }
        task_functions["Clean up ended run"] = clean_up.function
        durations = [
            function.metric_duration(label=name, statistic="Average", period=hourly)
            for name, function in task_functions.items()
        ]
        losses = [
            cw.SearchExpression(expression=_search(name, metrics.RUN_DIMENSION, "Maximum"), label=label)
            for name, label in (
                (metrics.FINAL_TRAINING_LOSS, "training"),
                (metrics.FINAL_VALIDATION_LOSS, "validation"),
            )
        ]
        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.days(14))
        dashboard.add_widgets(
            cw.SingleValueWidget(
                title="Runs in the time range",
                metrics=runs[:3],
                set_period_to_time_range=True,
                width=12,
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=12, height=6),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title="Runs per hour", left=runs, width=12),
            cw.GraphWidget(title="Execution time (minutes)", left=execution_time, width=12),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Time in each task (Lambda duration, ms)", left=durations, width=12, stacked=False
            ),
            cw.GraphWidget(
                title="Validation errors by code",
                left=[
                    cw.SearchExpression(
                        expression=_search(metrics.VALIDATION_ERRORS, metrics.CODE_DIMENSION, "Sum"),
                        label="",
                        period=hourly,
                    )
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Final loss of recent runs (by run)",
                left=losses,
                view=cw.GraphWidgetView.BAR,
                set_period_to_time_range=True,
                width=12,
            ),
            cw.GraphWidget(
                title="Endpoints in service, and their estimated cost",
                left=[
                    _pipeline_metric(
                        metrics.ENDPOINTS_IN_SERVICE,
                        "Maximum",
                        INVENTORY_PERIOD,
                        label="Endpoints in service",
                    )
                ],
                right=[
                    _pipeline_metric(
                        metrics.ENDPOINT_HOURLY_COST_ESTIMATE,
                        "Maximum",
                        INVENTORY_PERIOD,
                        label="Estimated cost (USD per hour)",
                    )
                ],
                right_y_axis=cw.YAxisProps(label="USD per hour", show_units=False),
                width=12,
            ),
        )
        # Each "Take a training slot" records what it saw; the maximum over 5 minutes is the longest
        # the line got (a quiet queue records nothing, and shows as a gap, not as zero).
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Training queue: runs in line and slots in use",
                left=[
                    _pipeline_metric(metrics.QUEUE_LENGTH, "Maximum", QUEUE_PERIOD, label="Runs in line"),
                    _pipeline_metric(
                        metrics.TRAINING_SLOTS_IN_USE, "Maximum", QUEUE_PERIOD, label="Training slots in use"
                    ),
                ],
                left_y_axis=cw.YAxisProps(min=0, show_units=False),
                width=24,
            )
        )
        return dashboard

    # ---- logs ----

    def _query(
        self, functions: WorkflowFunctions, clean_up: CleanUpEndedExecution, pipeline_logs: logs.ILogGroup
    ) -> logs.QueryDefinition:
        groups: list[logs.ILogGroup] = [pipeline_logs]
        for function in (*functions.all(), clean_up.function):
            assert isinstance(function, lambda_.Function), f"{function.node.path} has no log group"
            groups.append(function.log_group)
        return logs.QueryDefinition(
            self,
            "OneRun",
            query_definition_name=f"{Aws.STACK_NAME}/one-run",
            log_groups=groups,
            query_string=logs.QueryString(
                fields=[
                    "@timestamp",
                    "level",
                    "run",
                    "version",
                    "execution",
                    "function_name",
                    "message",
                    "type",
                    "execution_arn",
                    "@log",
                ],
                # Replace RUN with the run's folder name, or EXECUTION with the execution's name (the
                # correlation id of every function's lines; the state machines' own lines name it in
                # execution_arn).
                filter_statements=[
                    'run = "RUN" or correlation_id = "EXECUTION" or execution_arn like "EXECUTION"'
                ],
                sort="@timestamp asc",
                limit=10000,
            ),
        )


_UPLOAD_NOT_STARTED = (
    "EventBridge could not start the fine-tuning state machine for an uploaded train.jsonl after its "
    "retries: no run started. The event is in the dead-letter queue with the error. Fix the cause "
    "(the rule's role, the state machine), then upload train.jsonl again."
)
_CLEAN_UP_NOT_STARTED = (
    "EventBridge could not start the clean-up of an ended execution after its retries: its job may still "
    "run and its throughput may still bill. The event is in the dead-letter queue with the error. Start "
    "the CleanUpMachine with the event's detail, or stop the job and delete the throughput tagged "
    "finetune:run=<run>."
)


def _pipeline_metric(name: str, statistic: str, period: Duration, *, label: str | None = None) -> cw.Metric:
    """One of the pipeline's own metrics, with the only dimension Powertools gives it (``service``)."""
    return cw.Metric(
        namespace=metrics.NAMESPACE,
        metric_name=name,
        dimensions_map={metrics.SERVICE_DIMENSION: metrics.SERVICE},
        statistic=statistic,
        period=period,
        label=label,
    )


def _search(name: str, dimension: str, statistic: str) -> str:
    """Every time series of the pipeline metric ``name`` by ``dimension`` (one per code, one per run)."""
    schema = f"{{{metrics.NAMESPACE},{dimension},{metrics.SERVICE_DIMENSION}}}"
    return (
        f'SEARCH(\'{schema} MetricName="{name}" {metrics.SERVICE_DIMENSION}="{metrics.SERVICE}"\', '
        f"'{statistic}')"
    )


def _let_alarms_publish(topic: sns.ITopic, key: kms.IKey) -> None:
    """Let this account's CloudWatch alarms publish to the pipeline's topic and use its key for that.

    CloudWatch needs both: sns:Publish in the topic's policy and kms:GenerateDataKey and kms:Decrypt in
    the key's policy (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger,
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
    A configured key (kms_key_arn) is not the stack's to change: its owners add that statement.
    """
    stack = Stack.of(topic)
    alarms = f"arn:{Aws.PARTITION}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
    cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsOfThisAccountPublish",
            principals=[cloudwatch],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": alarms},
            },
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsEncryptForTopicsOfThisAccount",
            principals=[cloudwatch],
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=["*"],  # in a key policy, "*" means this key
            # The topic's ARN would make the key depend on the topic, which depends on the key: the
            # topics of this account and Region (this key encrypts only the pipeline's).
            conditions={
                "StringLike": {
                    "kms:EncryptionContext:aws:sns:topicArn": (
                        f"arn:{Aws.PARTITION}:sns:{stack.region}:{stack.account}:*"
                    )
                }
            },
        )
    )
