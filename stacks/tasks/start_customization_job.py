"""StartCustomizationJob: starts the run's Bedrock customization job, passing the service role."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from bedrock_finetune.settings import StartCustomizationJobSettings
from stacks.bedrock_service_role import BEDROCK_PRINCIPAL, BedrockServiceRole
from stacks.permissions import kms_via, tag_on_create
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids


class StartCustomizationJob(PipelineFunction):
    """Creates the job (idempotently) for the configured base model; may pass only the service role."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, service_role: BedrockServiceRole) -> None:
        config, key, arns = ctx.config, ctx.runtime.key, ctx.arns
        settings = StartCustomizationJobSettings(
            service_role_arn=service_role.role.role_arn,
            base_model_id=config.base_model_id,
            custom_model_kms_key_arn=key.key_arn,
            stack_tag=Aws.STACK_ID,
            resource_tags=dict(config.tags),
        )
        super().__init__(
            scope,
            "StartCustomizationJob",
            runtime=ctx.runtime,
            module="start_customization_job",
            description="Starts the run's Bedrock model customization job (idempotent)",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="CreateJobForBaseModel",
                actions=["bedrock:CreateModelCustomizationJob"],
                resources=[arns.foundation_model, arns.custom_models, arns.jobs],
            ),
            tag_on_create("TagJobsAndModelsItCreates", [arns.custom_models, arns.jobs], list(config.tags)),
            iam.PolicyStatement(
                sid="FindExistingJob", actions=["bedrock:GetModelCustomizationJob"], resources=[arns.jobs]
            ),
            iam.PolicyStatement(
                sid="PassServiceRoleToBedrock",
                actions=["iam:PassRole"],
                resources=[service_role.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": BEDROCK_PRINCIPAL}},
            ),
            iam.PolicyStatement(
                sid="EncryptCustomModelViaBedrock",
                actions=["kms:DescribeKey", "kms:GenerateDataKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions=kms_via(self, "bedrock"),
            ),
        )
        acknowledge_bedrock_ids(self.role, "custom-model/*", "model-customization-job/*")
