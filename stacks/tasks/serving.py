"""The serving tasks: PlanServing, ServeModel and GetEndpointStatus (a line's one endpoint)."""

from __future__ import annotations

import dataclasses

from aws_cdk import Aws, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bedrock_finetune.metrics import INVENTORY_PERIOD_SECONDS
from bedrock_finetune.quota_wait import cap_for
from bedrock_finetune.settings import InventorySettings, ServeModelSettings, ServingSettings
from stacks.permissions import (
    bucket_key_via_s3,
    kms_via,
    publish_statements,
    spend_on_this_stacks_models,
    tag_on_create,
)
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids
from stacks.tasks.line_record import acknowledge_records, read_line_records


def serving_settings(ctx: TaskContext) -> ServingSettings:
    """What PlanServing, ServeModel and GetEndpointStatus are configured with."""
    config = ctx.config
    return ServingSettings(
        base_model_id=config.base_model_id,
        mode=config.serving,
        approval=config.approval,
        model_units=config.model_units,
        commitment=config.commitment,
        endpoint_wait_hours=config.endpoint_wait_hours,
        endpoint_poll_cap_seconds=config.throughput_poll_seconds,
        prices=dict(config.prices),
        stack_tag=Aws.STACK_ID,
        resource_tags=dict(config.tags),
    )


def read_endpoints(ctx: TaskContext) -> iam.PolicyStatement:
    """Find a line's endpoint by its name, and read its status."""
    return iam.PolicyStatement(
        sid="ReadEndpoints",
        actions=["bedrock:GetProvisionedModelThroughput", "bedrock:GetCustomModelDeployment"],
        resources=[ctx.arns.provisioned_models, ctx.arns.deployments],
    )


class PlanServing(PipelineFunction):
    """Read-only: looks up the line's endpoint and prices what serving the new version means."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "PlanServing",
            runtime=ctx.runtime,
            module="plan_serving",
            description="Plans serving a new version: the line's endpoint, approval, estimated price",
            environment=serving_settings(ctx).to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(read_endpoints(ctx))
        acknowledge_bedrock_ids(self.role, "provisioned-model/*", "custom-model-deployment/*")


def waits_for_deployment_quota(ctx: TaskContext) -> bool:
    """Whether a deployment refused for a quota waits (on-demand serving, deployment_quota_policy = wait);
    otherwise the refusal fails the run at once."""
    return ctx.config.waits_for_deployment_quota


class ServeModel(PipelineFunction):
    """Creates the line's endpoint, or replaces the model behind it: only for this stack's models. When
    Bedrock refuses a deployment for a quota, decides the next wait and tells the run's people once."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic) -> None:
        config, arns = ctx.config, ctx.arns
        base = serving_settings(ctx)
        settings = ServeModelSettings(
            **{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
            policy=config.deployment_quota_policy,
            max_wait_seconds=config.max_deployment_wait_hours * 3600,
            cap_seconds=cap_for(config.throughput_poll_seconds),
            topic_arn=topic.topic_arn,
        )
        super().__init__(
            scope,
            "ServeModel",
            runtime=ctx.runtime,
            module="serve_model",
            description="Creates a line's endpoint or puts the new model behind it (idempotent)",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        if waits_for_deployment_quota(ctx):
            self.add_to_policy(
                *publish_statements(self, topic, ctx.runtime.key, sid="DeploymentQuotaNotices")
            )
        self.add_to_policy(
            read_endpoints(ctx),
            *spend_on_this_stacks_models(arns),
            tag_on_create(
                "TagEndpointsItCreates", [arns.provisioned_models, arns.deployments], list(config.tags)
            ),
            iam.PolicyStatement(
                sid="UseCustomModelKeyViaBedrock",
                actions=["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[ctx.runtime.key.key_arn],
                conditions=kms_via(self, "bedrock"),
            ),
        )
        acknowledge_bedrock_ids(
            self.role, "custom-model/*", "provisioned-model/*", "custom-model-deployment/*"
        )


class GetEndpointStatus(PipelineFunction):
    """Read-only: the endpoint's status for the waiting loop."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        super().__init__(
            scope,
            "GetEndpointStatus",
            runtime=ctx.runtime,
            module="get_endpoint_status",
            description="Reports whether a line's endpoint serves the new model yet",
            environment=serving_settings(ctx).to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(read_endpoints(ctx))
        acknowledge_bedrock_ids(self.role, "provisioned-model/*", "custom-model-deployment/*")


class ServingInventory(PipelineFunction):
    """Hourly: reads the line records and publishes the endpoint metrics the alarms watch."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, dead_letters: sqs.IQueue) -> None:
        base = serving_settings(ctx)
        settings = InventorySettings(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                                     bucket_name=ctx.data.bucket.bucket_name)  # fmt: skip
        super().__init__(
            scope,
            "ServingInventory",
            runtime=ctx.runtime,
            module="serving_inventory",
            description="Hourly: endpoints in service, past their time to live, approvals waiting, cost",
            environment=settings.to_env(),
            dead_letter_queue=dead_letters,
        )
        self.add_to_policy(
            *read_line_records(ctx),
            bucket_key_via_s3(self, ctx.runtime.key, ("kms:Decrypt",), sid="ReadBucketKeyViaS3"),
        )
        dead_letters.grant_send_messages(self.role)
        acknowledge_records(ctx, self.role)
        rule = events.Rule(
            self,
            "Hourly",
            description="Runs the serving inventory (endpoint metrics for the alarms and the dashboard)",
            schedule=events.Schedule.rate(Duration.seconds(INVENTORY_PERIOD_SECONDS)),
        )
        rule.add_target(
            targets.LambdaFunction(self.function, dead_letter_queue=dead_letters, retry_attempts=2)
        )
