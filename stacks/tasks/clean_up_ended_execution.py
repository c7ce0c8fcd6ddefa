"""CleanUpEndedExecution: after an execution timed out or was aborted, clean up and notify.

One home for the function, its grant on the state machine's executions and the EventBridge rule that
invokes it. Executions that fail inside the state machine clean up in their own failure chain.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.nag import acknowledge_wildcard_resource, logical_ref, nag_arn
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.clean_up_failed_run import clean_up_statements
from stacks.tasks.context import TaskContext, acknowledge_bedrock_ids
from stacks.tasks.notify import notify_settings, notify_statements


class CleanUpEndedExecution(PipelineFunction):
    """Invoked asynchronously by the ``OnExecutionEnded`` rule; failed events go to the dead letters."""

    def __init__(
        self,
        scope: Construct,
        *,
        ctx: TaskContext,
        state_machine: sfn.StateMachine,
        topic: sns.ITopic,
        pipeline_logs: logs.ILogGroup,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(
            scope,
            "CleanUpEndedExecution",
            runtime=ctx.runtime,
            module="clean_up_ended_execution",
            description="Cleans up after executions that timed out or were aborted, and notifies",
            environment=notify_settings(ctx, topic, pipeline_logs).to_env(),
            timeout=Duration.minutes(2),
            # EventBridge invokes it asynchronously: events whose clean-up keeps failing are kept.
            dead_letter_queue=dead_letters,
        )
        stack = Stack.of(self)
        self.add_to_policy(
            *clean_up_statements(ctx.arns),
            *notify_statements(self, ctx, topic),
            iam.PolicyStatement(
                sid="ReadExecutionInput",
                actions=["states:DescribeExecution"],
                resources=[
                    f"arn:{Aws.PARTITION}:states:{stack.region}:{stack.account}:execution:"
                    f"{state_machine.state_machine_name}:*"
                ],
            ),
        )
        # In the stack's scope, where it has always been (its logical ID stays the same).
        self.rule = events.Rule(
            stack,
            "OnExecutionEnded",
            description="Clean up after a fine-tuning execution that timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(self.function, dead_letter_queue=dead_letters, retry_attempts=10)
            ],
        )
        ctx.data.acknowledge_prefixes(self.role, "reports")
        acknowledge_bedrock_ids(self.role, "model-customization-job/*", "provisioned-model/*")
        acknowledge_wildcard_resource(
            self.role,
            nag_arn(stack, "states", f"execution:<{logical_ref(state_machine)}.Name>:*"),
            "Executions of this state machine only; their names are generated per run.",
        )
