"""CreateProvisionedThroughput: buys Provisioned Throughput for the run's custom model."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from bedrock_finetune.settings import CreateProvisionedThroughputSettings
from stacks.permissions import kms_via, tag_on_create
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids


class CreateProvisionedThroughput(PipelineFunction):
    """Creates (idempotently) the throughput for custom models of this account, and tags it."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        config, arns = ctx.config, ctx.arns
        settings = CreateProvisionedThroughputSettings(
            model_units=config.model_units,
            commitment=config.commitment,
            stack_tag=Aws.STACK_ID,
            resource_tags=dict(config.tags),
        )
        super().__init__(
            scope,
            "CreateProvisionedThroughput",
            runtime=ctx.runtime,
            module="create_provisioned_throughput",
            description="Buys Provisioned Throughput for the run's custom model (idempotent)",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="CreateThroughputForCustomModels",
                actions=["bedrock:CreateProvisionedModelThroughput"],
                resources=[arns.custom_models, arns.provisioned_models],
            ),
            tag_on_create("TagThroughputItCreates", [arns.provisioned_models], list(config.tags)),
            iam.PolicyStatement(
                sid="FindExistingThroughput",
                actions=["bedrock:GetProvisionedModelThroughput"],
                resources=[arns.provisioned_models],
            ),
            iam.PolicyStatement(
                sid="UseCustomModelKeyViaBedrock",
                actions=["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[ctx.runtime.key.key_arn],
                conditions=kms_via(self, "bedrock"),
            ),
        )
        acknowledge_bedrock_ids(self.role, "custom-model/*", "provisioned-model/*")
