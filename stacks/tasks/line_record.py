"""The line record and its time to live: RecordLineVersion (a state-machine task) and
ExpireThroughput (the target of a line's one-time EventBridge Scheduler schedules)."""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bedrock_finetune.settings import LineSettings
from stacks.nag import (
    INLINE_POLICY_REASON,
    acknowledge_inline_policy,
    acknowledge_wildcard_resource,
    logical_ref,
    nag_arn,
)
from stacks.permissions import (
    bucket_key_via_s3,
    delete_throughput_of_this_stack,
    publish_statements,
    write_reports,
)
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids


def schedule_group_name(stack_name: str) -> str:
    """The schedule group that holds every line's time-to-live schedules."""
    return f"{stack_name}-serving"


def acknowledge_records(ctx: TaskContext, role: iam.IRole) -> None:
    """cdk-nag: ``role`` reads or writes the line records (one per line, named at run time)."""
    bucket_ref = f"<{logical_ref(ctx.data.bucket)}.Arn>"
    for name in ("line.json", "approval.json"):
        acknowledge_wildcard_resource(
            role,
            f"{bucket_ref}/reports/*/{name}",
            f"The line's {name} only: one record per model line (reports/<line>/{name}), whose name "
            "comes from the uploaded run folder at run time.",
        )


def read_line_records(ctx: TaskContext) -> list[iam.PolicyStatement]:
    """Read the line records (``line.json``, ``approval.json``) and list ``reports/``: a missing
    record answers 404, not 403, only with ListBucket on the prefix."""
    bucket = ctx.data.bucket
    return [
        iam.PolicyStatement(
            sid="ReadLineRecords",
            actions=["s3:GetObject"],
            resources=[
                bucket.arn_for_objects("reports/*/line.json"),
                bucket.arn_for_objects("reports/*/approval.json"),
            ],
        ),
        iam.PolicyStatement(
            sid="KnowWhenARecordIsMissing",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["reports/*"]}},
        ),
    ]


def _line_records(ctx: TaskContext) -> list[iam.PolicyStatement]:
    bucket = ctx.data.bucket
    return [
        *read_line_records(ctx),
        write_reports(bucket, sid="WriteLineRecords"),
        bucket_key_via_s3(
            Stack.of(bucket), ctx.runtime.key, ("kms:Decrypt", "kms:GenerateDataKey"), sid="UseBucketKeyViaS3"
        ),
    ]


class ExpireThroughput(PipelineFunction):
    """Reminds before a line's throughput reaches its time to live, then deletes it (no commitment)."""

    def __init__(
        self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic, dead_letters: sqs.IQueue
    ) -> None:
        stack = Stack.of(scope)
        super().__init__(
            scope,
            "ExpireThroughput",
            runtime=ctx.runtime,
            module="expire_throughput",
            description="A line's time to live: reminds, then deletes its no-commitment throughput",
            environment=LineSettings(
                bucket_name=ctx.data.bucket.bucket_name,
                topic_arn=topic.topic_arn,
                stack_name=stack.stack_name,
            ).to_env(),
            dead_letter_queue=dead_letters,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThroughput",
                actions=["bedrock:GetProvisionedModelThroughput"],
                resources=[ctx.arns.provisioned_models],
            ),
            delete_throughput_of_this_stack(ctx.arns),
            *_line_records(ctx),
            *publish_statements(self, topic, ctx.runtime.key, sid="TimeToLiveNotices"),
        )
        ctx.data.acknowledge_prefixes(self.role, "reports")
        acknowledge_records(ctx, self.role)
        acknowledge_bedrock_ids(self.role, "provisioned-model/*")
        dead_letters.grant_send_messages(self.role)


class LineRecords(Construct):
    """RecordLineVersion, the time-to-live function, its schedule group and the role Scheduler uses."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ctx: TaskContext,
        topic: sns.ITopic,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        config = ctx.config
        group_name = schedule_group_name(config.stack_name)
        self.expire = ExpireThroughput(scope, ctx=ctx, topic=topic, dead_letters=dead_letters)
        ttl = config.throughput_ttl_hours is not None
        scheduler_role: iam.Role | None = None
        schedules_arn = (
            f"arn:{Aws.PARTITION}:scheduler:{stack.region}:{stack.account}:schedule/{group_name}/*"
        )
        if ttl:
            scheduler.CfnScheduleGroup(self, "ScheduleGroup", name=group_name)
            scheduler_role = iam.Role(
                self,
                "SchedulerRole",
                description="Role EventBridge Scheduler assumes to run a line's time-to-live schedules",
                assumed_by=iam.ServicePrincipal(
                    "scheduler.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                ),
            )
            scheduler_role.add_to_policy(
                iam.PolicyStatement(
                    sid="InvokeTimeToLiveFunction",
                    actions=["lambda:InvokeFunction"],
                    resources=[self.expire.function.function_arn],
                )
            )
            acknowledge_inline_policy(scheduler_role, INLINE_POLICY_REASON)
        settings = LineSettings(
            bucket_name=ctx.data.bucket.bucket_name,
            topic_arn=topic.topic_arn,
            stack_name=stack.stack_name,
            ttl_hours=config.throughput_ttl_hours,
            reminder_hours=config.ttl_reminder_hours,
            schedule_group=group_name if ttl else "",
            expire_function_arn=self.expire.function.function_arn if ttl else "",
            scheduler_role_arn=scheduler_role.role_arn if scheduler_role else "",
        )
        self.record = PipelineFunction(
            scope,
            "RecordLineVersion",
            runtime=ctx.runtime,
            module="record_line_version",
            description="Records a version in its line (reports/<line>/line.json), starts its time to live",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.record.add_to_policy(
            *_line_records(ctx),
            iam.PolicyStatement(
                sid="ReadEvaluationDecision",
                actions=["s3:GetObject"],
                resources=[ctx.data.bucket.arn_for_objects("reports/*/evaluation.json")],
            ),
        )
        acknowledge_wildcard_resource(
            self.record.role,
            f"<{logical_ref(ctx.data.bucket)}.Arn>/reports/*/evaluation.json",
            "The run's evaluation report only (reports/<run>/evaluation.json), whose decision the line "
            "record keeps; the run's name comes from the uploaded folder at run time.",
        )
        ctx.data.acknowledge_prefixes(self.record.role, "reports")
        acknowledge_records(ctx, self.record.role)
        if scheduler_role is not None:
            self.record.add_to_policy(
                iam.PolicyStatement(
                    sid="ScheduleTimeToLive",
                    actions=["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:GetSchedule"],
                    resources=[schedules_arn],
                ),
                iam.PolicyStatement(
                    sid="PassSchedulerRole",
                    actions=["iam:PassRole"],
                    resources=[scheduler_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
                ),
            )
            acknowledge_wildcard_resource(
                self.record.role,
                nag_arn(stack, "scheduler", f"schedule/{group_name}/*"),
                "Schedule names are per line (one reminder, one deletion); limited to this stack's group.",
            )
        self.scheduler_role = scheduler_role
        self.schedules_arn = schedules_arn
