"""Notify: publishes a run's outcome to the topic and writes reports/<run>/run.json."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from bedrock_finetune.settings import NotifySettings
from stacks.permissions import bucket_key_via_s3, publish_statements, write_reports
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext


def notify_settings(ctx: TaskContext, topic: sns.ITopic, pipeline_logs: logs.ILogGroup) -> NotifySettings:
    """Where notices and run records go (shared with CleanUpEndedExecution)."""
    return NotifySettings(
        topic_arn=topic.topic_arn,
        bucket_name=ctx.data.bucket.bucket_name,
        pipeline_log_group=pipeline_logs.log_group_name,
    )


def notify_statements(scope: Construct, ctx: TaskContext, topic: sns.ITopic) -> list[iam.PolicyStatement]:
    """Write the run record under reports/ and publish the notice, each key use through its service."""
    return [
        write_reports(ctx.data.bucket, sid="WriteRunRecords"),
        bucket_key_via_s3(scope, ctx.runtime.key, ("kms:GenerateDataKey",), sid="EncryptRunRecordsViaS3"),
        *publish_statements(scope, topic, ctx.runtime.key, sid="Notifications"),
    ]


class Notify(PipelineFunction):
    """The last task of every execution, on success and failure alike."""

    def __init__(
        self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic, pipeline_logs: logs.ILogGroup
    ) -> None:
        super().__init__(
            scope,
            "Notify",
            runtime=ctx.runtime,
            module="notify",
            description="Publishes a run's outcome to the notification topic",
            environment=notify_settings(ctx, topic, pipeline_logs).to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(*notify_statements(self, ctx, topic))
        ctx.data.acknowledge_prefixes(self.role, "reports")
