"""GetCustomizationJob: reads the job's status for the waiting loop."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids


class GetCustomizationJob(PipelineFunction):
    """Read-only: GetModelCustomizationJob on this account's jobs."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "GetCustomizationJob",
            runtime=ctx.runtime,
            module="get_customization_job",
            description="Reports the customization job's status",
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ReadJob", actions=["bedrock:GetModelCustomizationJob"], resources=[ctx.arns.jobs]
            )
        )
        acknowledge_bedrock_ids(self.role, "model-customization-job/*")
