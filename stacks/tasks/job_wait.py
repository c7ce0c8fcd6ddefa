"""Waiting for the customization job without polling: the Wait for the job to end task (a task token
kept under ``reports/_waiting/``), and JobEnded, which Bedrock's job state-change event and a slow
fallback schedule invoke to wake the waiting runs (see ``bedrock_finetune/job_wait.py``)."""

from __future__ import annotations

import math

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bedrock_finetune.bedrock_jobs import JOB_TERMINAL
from bedrock_finetune.job_wait import WAITING_PREFIX
from bedrock_finetune.settings import JobWaitSettings
from stacks.nag import acknowledge_wildcard_resource, logical_ref
from stacks.permissions import bucket_key_via_s3
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids
from stacks.tasks.training_queue import give_back_statements

#: The event Bedrock sends when a customization job changes state
#: (https://docs.aws.amazon.com/bedrock/latest/userguide/monitoring-eventbridge-how-it-works.html).
JOB_STATE_CHANGE = "Model Customization Job State Change"

_WAKE_REASON = (
    "Only X-Ray trace upload (no resource type) and states:SendTaskSuccess / SendTaskFailure, which have "
    "no resource type either: the task token, readable only from reports/_waiting/ in the dataset "
    "bucket, is the control."
)
_WAITING_REASON = (
    "The waiting runs' records only: reports/_waiting/<job name>/<execution name>.json, named at run time."
)


def _job_wait_statements(
    function: PipelineFunction, ctx: TaskContext, s3_actions: list[str], kms_actions: tuple[str, ...]
) -> None:
    """What both functions need: their waiting records, the bucket's key through S3, the job's status,
    SendTaskSuccess / SendTaskFailure (no resource type, see stacks/nag.py), and the training queue's
    table, where a run whose job ended gives its slot back."""
    bucket = ctx.data.bucket
    function.add_to_policy(
        iam.PolicyStatement(
            sid="WaitingRecords",
            actions=s3_actions,
            resources=[bucket.arn_for_objects(f"{WAITING_PREFIX}*")],
        ),
        iam.PolicyStatement(
            sid="ListWaitingRecords",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{WAITING_PREFIX}*"]}},
        ),
        bucket_key_via_s3(function, ctx.runtime.key, kms_actions, sid="UseBucketKeyViaS3"),
        iam.PolicyStatement(
            sid="ReadJob", actions=["bedrock:GetModelCustomizationJob"], resources=[ctx.arns.jobs]
        ),
        iam.PolicyStatement(
            sid="WakeTheWaitingRun",
            actions=["states:SendTaskFailure", "states:SendTaskSuccess"],
            resources=["*"],  # no resource type: the task token is the control (stacks/nag.py)
        ),
        *give_back_statements(function, ctx.queue),
    )
    acknowledge_bedrock_ids(function.role, "model-customization-job/*")
    policy = function.role.node.find_child("DefaultPolicy")
    acknowledge_wildcard_resource(policy, "*", _WAKE_REASON)
    acknowledge_wildcard_resource(
        function.role, f"<{logical_ref(ctx.data.bucket)}.Arn>/{WAITING_PREFIX}*", _WAITING_REASON
    )


def _settings(ctx: TaskContext) -> JobWaitSettings:
    queue = ctx.queue.table.table_name if ctx.queue is not None else None
    return JobWaitSettings(bucket_name=ctx.data.bucket.bucket_name, queue_table=queue)


class WaitForJobToEnd(PipelineFunction):
    """Invoked with ``.waitForTaskToken`` after the job starts: keeps the token, wakes at once if the job
    has already ended."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "WaitForJobToEnd",
            runtime=ctx.runtime,
            module="wait_for_job_to_end",
            description="Keeps the run's task token until its customization job ends",
            environment=_settings(ctx).to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        _job_wait_statements(
            self, ctx, ["s3:PutObject", "s3:DeleteObject"], ("kms:GenerateDataKey", "kms:Decrypt")
        )


class JobEnded(PipelineFunction):
    """Wakes the runs waiting on a job that ended: from Bedrock's state-change event (terminal statuses),
    and from a fallback schedule every ``job_poll_seconds`` (the events are best effort)."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, dead_letters: sqs.IQueue) -> None:
        super().__init__(
            scope,
            "JobEnded",
            runtime=ctx.runtime,
            module="job_ended",
            description="Wakes the runs waiting on a customization job that ended (event, or fallback check)",
            environment=_settings(ctx).to_env(),
            dead_letter_queue=dead_letters,
        )
        _job_wait_statements(self, ctx, ["s3:GetObject", "s3:DeleteObject"], ("kms:Decrypt",))
        dead_letters.grant_send_messages(self.role)
        target = targets.LambdaFunction(self.function, dead_letter_queue=dead_letters, retry_attempts=2)
        self.on_job_state_change = events.Rule(
            self,
            "OnJobStateChange",
            description="A customization job ended: wake the runs waiting on it",
            event_pattern=events.EventPattern(
                source=["aws.bedrock"],
                detail_type=[JOB_STATE_CHANGE],
                detail={"jobStatus": sorted(JOB_TERMINAL)},
            ),
            targets=[target],
        )
        minutes = max(1, math.ceil(ctx.config.job_poll_seconds / 60))
        self.fallback_check = events.Rule(
            self,
            "FallbackCheck",
            description="Bedrock's job events are best effort: wake waiting runs whose job ended anyway",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[target],
        )
