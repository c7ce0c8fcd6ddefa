"""GetProvisionedThroughput: reads the throughput's status for the waiting loop."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids


class GetProvisionedThroughput(PipelineFunction):
    """Read-only: GetProvisionedModelThroughput on this account's throughputs."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "GetProvisionedThroughput",
            runtime=ctx.runtime,
            module="get_provisioned_throughput",
            description="Reports the Provisioned Throughput's status",
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThroughput",
                actions=["bedrock:GetProvisionedModelThroughput"],
                resources=[ctx.arns.provisioned_models],
            )
        )
        acknowledge_bedrock_ids(self.role, "provisioned-model/*")
