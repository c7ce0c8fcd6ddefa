"""CleanUpFailedRun: stops a failed run's job and deletes the no-commitment throughput it bought."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from bedrock_finetune.settings import CleanUpSettings
from stacks.permissions import (
    BedrockArns,
    delete_deployments_of_this_stack,
    delete_throughput_of_this_stack,
    stop_jobs_of_this_stack,
)
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids
from stacks.tasks.training_queue import give_back_statements


def clean_up_statements(arns: BedrockArns) -> list[iam.PolicyStatement]:
    """Find a run's job and throughput by name; stop or delete only what carries this stack's tag."""
    return [
        iam.PolicyStatement(
            sid="FindRunResources",
            actions=[
                "bedrock:GetModelCustomizationJob",
                "bedrock:GetProvisionedModelThroughput",
                "bedrock:GetCustomModelDeployment",
            ],
            resources=[arns.jobs, arns.provisioned_models, arns.deployments],
        ),
        iam.PolicyStatement(
            sid="ReadWhichExecutionCreatedThem",
            actions=["bedrock:ListTagsForResource"],
            # custom models too: an endpoint serving another execution's model is left serving it
            resources=[arns.jobs, arns.custom_models, arns.provisioned_models, arns.deployments],
        ),
        stop_jobs_of_this_stack(arns),
        delete_throughput_of_this_stack(arns),
        delete_deployments_of_this_stack(arns),
    ]


def clean_up_settings(ctx: TaskContext) -> CleanUpSettings:
    """How many attempts a settling throughput gets, and where the run's training slot is given back."""
    return CleanUpSettings(
        max_attempts=ctx.config.cleanup_max_attempts,
        queue_table=ctx.queue.table.table_name if ctx.queue is not None else None,
    )


class CleanUpFailedRun(PipelineFunction):
    """The failure chain's clean-up inside the state machine."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "CleanUpFailedRun",
            runtime=ctx.runtime,
            module="clean_up_failed_run",
            description="Stops a failed run's job and deletes the no-commitment throughput it bought",
            environment=clean_up_settings(ctx).to_env(),
            timeout=Duration.minutes(2),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(*clean_up_statements(ctx.arns), *give_back_statements(self, ctx.queue))
        acknowledge_bedrock_ids(
            self.role,
            "model-customization-job/*",
            "custom-model/*",
            "provisioned-model/*",
            "custom-model-deployment/*",
        )
