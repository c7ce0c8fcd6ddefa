"""CleanUpEndedExecution: after an execution timed out, was aborted, or failed outside its failure chain,
clean up what its run started and tell people, however long Bedrock takes to let go.

One home for the function, the small state machine that runs it until nothing is left settling, its
grants on the pipeline's executions, and the EventBridge rule that starts it:

    Read execution input -> Identify ended run -> Clean up ended run -> Already handled? -> Clean-up settled?
      (retry) -> Wait for Bedrock to settle -> Clean up ended run ...
      (done)  -> Notify ended run -> Ended run reported
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.nag import (
    INLINE_POLICY_REASON,
    acknowledge_inline_policy,
    acknowledge_wildcard_resource,
    logical_ref,
    nag_arn,
)
from stacks.permissions import describe_role
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.clean_up_failed_run import clean_up_settings, clean_up_statements
from stacks.tasks.context import TaskContext, acknowledge_bedrock_ids
from stacks.tasks.training_queue import give_back_statements
from stacks.workflow import lambda_task

#: The end states the rule reacts to. FAILED executions that went through their own failure chain
#: (a Fail state) are recognised by the function and left alone.
ENDED_STATUSES = ["TIMED_OUT", "ABORTED", "FAILED"]


class CleanUpEndedExecution(PipelineFunction):
    """The function, and the ``CleanUpMachine`` that runs it for each ended execution."""

    def __init__(
        self,
        scope: Construct,
        *,
        ctx: TaskContext,
        state_machine: sfn.StateMachine,
        notify: lambda_.IFunction,
        pipeline_logs: logs.ILogGroup,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(
            scope,
            "CleanUpEndedExecution",
            runtime=ctx.runtime,
            module="clean_up_ended_execution",
            description="Cleans up after runs that timed out, were aborted or failed outside their chain",
            environment=clean_up_settings(ctx).to_env(),
            timeout=Duration.minutes(2),
            invoked_synchronously_by="its clean-up state machine (LambdaInvoke, with retries and catch)",
        )
        stack = Stack.of(self)
        executions = (
            f"arn:{Aws.PARTITION}:states:{stack.region}:{stack.account}:execution:"
            f"{state_machine.state_machine_name}:*"
        )
        self.add_to_policy(
            *clean_up_statements(ctx.arns),
            *give_back_statements(self, ctx.queue),
            iam.PolicyStatement(
                sid="ReadHowTheExecutionEnded",
                actions=["states:GetExecutionHistory"],
                resources=[executions],
            ),
        )
        self.machine = self._machine(stack, ctx, notify, pipeline_logs)
        # In the stack's scope, where it has always been (its logical ID stays the same).
        self.rule = events.Rule(
            stack,
            "OnExecutionEnded",
            description="Clean up after a fine-tuning execution that timed out, was aborted or failed",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"status": ENDED_STATUSES, "stateMachineArn": [state_machine.state_machine_arn]},
            ),
            targets=[
                targets.SfnStateMachine(
                    self.machine,
                    input=events.RuleTargetInput.from_object(
                        {"detail": events.EventField.from_path("$.detail")}
                    ),
                    dead_letter_queue=dead_letters,
                    retry_attempts=10,
                )
            ],
        )
        acknowledge_bedrock_ids(
            self.role,
            "model-customization-job/*",
            "custom-model/*",
            "provisioned-model/*",
            "custom-model-deployment/*",
        )
        acknowledge_wildcard_resource(
            self.role,
            nag_arn(stack, "states", f"execution:<{logical_ref(state_machine)}.Name>:*"),
            "Executions of the pipeline's state machine only; their names are generated per run.",
        )
        self._acknowledge_machine(notify)

    def _machine(
        self, stack: Stack, ctx: TaskContext, notify: lambda_.IFunction, pipeline_logs: logs.ILogGroup
    ) -> sfn.StateMachine:
        reported = sfn.Succeed(self, "Ended run reported")
        notify_task = lambda_task(
            self,
            "Notify ended run",
            notify,
            {},
            result_path="$.notice",
            # The notice is about the ended execution, not about this clean-up's own execution.
            payload=sfn.TaskInput.from_object(
                {
                    "outcome": "failed",
                    "state": {
                        "run": sfn.JsonPath.object_at("$.run"),
                        "failure": sfn.JsonPath.object_at("$.cleanup.failure"),
                        "cleanup": sfn.JsonPath.object_at("$.cleanup"),
                    },
                    "executionArn": sfn.JsonPath.string_at("$.detail.executionArn"),
                    "executionName": sfn.JsonPath.string_at("$.detail.name"),
                }
            ),
        )
        notify_task.add_catch(
            sfn.Fail(
                self,
                "Ended run not reported",
                error="NotificationFailed",
                cause="The clean-up ran, but its notice could not be published; see the Notify logs.",
            ),
            errors=["States.ALL"],
            result_path="$.notifyError",
        )
        notify_task.next(reported)
        clean_up = lambda_task(
            self,
            "Clean up ended run",
            self.function,
            {
                "run": sfn.JsonPath.object_at("$.run"),
                "detail": sfn.JsonPath.object_at("$.detail"),
                "previous": sfn.JsonPath.object_at("$.cleanup"),
            },
            result_path="$.cleanup",
        )
        clean_up.add_catch(
            sfn.Pass(
                self,
                "Clean-up of ended run failed",
                parameters={
                    "failed": True,
                    "summary.$": "States.Format('clean-up failed: {}', $.cleanupError.Cause)",
                    "failure": {
                        "step": "Execution",
                        "error.$": "$.detail.status",
                        "cause.$": "States.Format('The execution ended with status {} before the run "
                        "finished.', $.detail.status)",
                    },
                },
                result_path="$.cleanup",
            ).next(notify_task),
            errors=["States.ALL"],
            result_path="$.cleanupError",
        )
        wait = sfn.Wait(
            self,
            "Wait for Bedrock to settle",
            time=sfn.WaitTime.duration(Duration.seconds(ctx.config.cleanup_retry_seconds)),
        ).next(clean_up)
        clean_up.next(
            sfn.Choice(self, "Already handled?")
            .when(
                sfn.Condition.boolean_equals("$.cleanup.handled", True),
                sfn.Succeed(self, "Handled by the run's own failure chain"),
            )
            .otherwise(
                sfn.Choice(self, "Clean-up settled?")
                .when(sfn.Condition.boolean_equals("$.cleanup.retry", True), wait)
                .otherwise(notify_task)
            )
        )
        read_input = sfn.Pass(
            self,
            "Read execution input",
            parameters={"detail.$": "$.detail", "input.$": "States.StringToJson($.detail.input)"},
        )
        identify = sfn.Pass(
            self,
            "Identify ended run",
            comment="The run is the folder name: datasets/<run>/train.jsonl, as the pipeline reads it",
            parameters={
                "detail.$": "$.detail",
                "run": {
                    "bucket.$": "$.input.bucket",
                    "key.$": "$.input.key",
                    "etag.$": "$.input.etag",
                    "versionId.$": "$.input.versionId",
                    "run.$": "States.ArrayGetItem(States.StringSplit($.input.key, '/'), 1)",
                },
                "cleanup": {"attempt": 0},
            },
        )
        return sfn.StateMachine(
            self,
            "CleanUpMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(read_input.next(identify).next(clean_up)),
            timeout=Duration.hours(ctx.config.cleanup_max_hours + 1),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=pipeline_logs, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment="Clean up after a fine-tuning execution that ended without its own clean-up, and notify",
        )

    def _acknowledge_machine(self, notify: lambda_.IFunction) -> None:
        role = self.machine.role
        acknowledge_wildcard_resource(
            role,
            "*",
            "Only X-Ray tracing and CloudWatch Logs vended delivery, whose actions have no resource type.",
        )
        for function in (self.function, notify):
            acknowledge_wildcard_resource(
                role,
                f"<{logical_ref(function)}.Arn>:*",
                "Versions and aliases of the pipeline's own function (granted by the LambdaInvoke task).",
            )
        acknowledge_inline_policy(role, INLINE_POLICY_REASON)
        describe_role(role, "Execution role of the clean-up state machine: invokes its Lambdas")
        events_role = self.machine.node.try_find_child("EventsRole")
        if events_role is not None:
            acknowledge_inline_policy(events_role, INLINE_POLICY_REASON)
            describe_role(events_role, "Assumed by EventBridge to start the clean-up of an ended execution")
