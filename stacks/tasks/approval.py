"""RequestApproval: keeps a run's task token in reports/<line>/approval.json and asks the topic."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from bedrock_finetune.settings import ApprovalSettings
from stacks.permissions import bucket_key_via_s3, publish_statements, write_reports
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext


class RequestApproval(PipelineFunction):
    """Invoked with ``.waitForTaskToken`` before a run buys throughput (or changes serving)."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic) -> None:
        settings = ApprovalSettings(
            topic_arn=topic.topic_arn,
            bucket_name=ctx.data.bucket.bucket_name,
            timeout_hours=ctx.config.approval_timeout_hours,
            stack_name=Stack.of(scope).stack_name,
        )
        super().__init__(
            scope,
            "RequestApproval",
            runtime=ctx.runtime,
            module="request_approval",
            description="Asks for approval (with the price estimate) before a run buys throughput",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            write_reports(ctx.data.bucket, sid="KeepApprovalRequests"),
            bucket_key_via_s3(self, ctx.runtime.key, ("kms:GenerateDataKey",), sid="EncryptRequestsViaS3"),
            *publish_statements(self, topic, ctx.runtime.key, sid="ApprovalRequests"),
        )
        ctx.data.acknowledge_prefixes(self.role, "reports")
