"""EvaluateCandidate: scores a new version against the line's current model before it is served
(states Evaluate candidate, and on provisioned lines Evaluate current model before the swap)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from bedrock_finetune.evaluation import EVALUATION_FILE, on_demand_model_id
from bedrock_finetune.layout import VALIDATION_FILE
from bedrock_finetune.quota_wait import cap_for
from bedrock_finetune.settings import EvaluationSettings
from stacks.nag import acknowledge_wildcard_resource, logical_ref
from stacks.permissions import (
    bucket_key_via_s3,
    delete_deployments_of_this_stack,
    delete_throughput_of_this_stack,
    kms_via,
    owned_by_stack,
    publish_statements,
    spend_on_this_stacks_models,
    tag_on_create,
    write_reports,
)
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids
from stacks.tasks.serving import read_endpoints, waits_for_deployment_quota

#: Converse calls one invocation makes at most; with the judge's, each takes seconds, and the
#: function's 15 minutes leave room for slow answers.
FUNCTION_TIMEOUT = Duration.minutes(15)


def model_arn(scope: Construct, model_id: str) -> str:
    """The ARN IAM names for a model id: an ARN as given, else the stack Region's foundation model."""
    if model_id.startswith("arn:"):
        return model_id
    return f"arn:{Aws.PARTITION}:bedrock:{Stack.of(scope).region}::foundation-model/{model_id}"


class EvaluateCandidate(PipelineFunction):
    """Calls Converse on the candidate, the current model and the judge; on on-demand lines creates
    and deletes the candidate's temporary deployment; on provisioned lines swaps a failed candidate
    back. Everything it creates, changes or deletes is tagged with this stack."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic) -> None:
        config, arns, data = ctx.config, ctx.arns, ctx.data
        settings = EvaluationSettings(
            base_model_id=config.base_model_id,
            evaluation=config.evaluation,
            prices=dict(config.prices),
            chars_per_token=config.chars_per_token,
            stack_tag=Aws.STACK_ID,
            resource_tags=dict(config.tags),
            # A temporary deployment refused for a quota waits as the line's own would (Serve model)
            policy=config.deployment_quota_policy,
            max_wait_seconds=config.max_deployment_wait_hours * 3600,
            cap_seconds=cap_for(config.throughput_poll_seconds),
            topic_arn=topic.topic_arn,
        )
        super().__init__(
            scope,
            "EvaluateCandidate",
            runtime=ctx.runtime,
            module="evaluate_candidate",
            description="Scores a new version against the line's current model (evaluation.json)",
            environment=settings.to_env(),
            timeout=FUNCTION_TIMEOUT,
            memory_size=512,
            invoked_synchronously_by=STATE_MACHINE,
        )
        models = [model_arn(scope, on_demand_model_id(config.base_model_id))]
        if config.evaluation.judge_model_id:
            models.append(model_arn(scope, config.evaluation.judge_model_id))
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ReadEvaluationPrompts",
                actions=["s3:GetObject"],
                resources=[
                    data.bucket.arn_for_objects(f"datasets/*/{EVALUATION_FILE}"),
                    data.bucket.arn_for_objects(f"datasets/*/{VALIDATION_FILE}"),
                    data.bucket.arn_for_objects("reports/*/evaluation.json"),
                ],
            ),
            iam.PolicyStatement(
                sid="KnowWhenAFileIsMissing",
                actions=["s3:ListBucket"],
                resources=[data.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["datasets/*", "reports/*"]}},
            ),
            write_reports(data.bucket),
            bucket_key_via_s3(
                self, ctx.runtime.key, ("kms:Decrypt", "kms:GenerateDataKey"), sid="UseBucketKeyViaS3"
            ),
            # Converse is authorized as InvokeModel: the base (or judge) model, this stack's endpoints.
            iam.PolicyStatement(
                sid="ConverseWithBaseAndJudgeModels", actions=["bedrock:InvokeModel"], resources=models
            ),
            iam.PolicyStatement(
                sid="ConverseWithThisStacksEndpoints",
                actions=["bedrock:InvokeModel"],
                resources=[arns.provisioned_models, arns.deployments],
                conditions=owned_by_stack(),
            ),
            read_endpoints(ctx),
            *spend_on_this_stacks_models(arns),
            tag_on_create("TagDeploymentsItCreates", [arns.deployments], list(config.tags)),
            delete_deployments_of_this_stack(arns),
            delete_throughput_of_this_stack(arns),
            iam.PolicyStatement(
                sid="UseCustomModelKeyViaBedrock",
                actions=["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[ctx.runtime.key.key_arn],
                conditions=kms_via(self, "bedrock"),
            ),
        )
        if waits_for_deployment_quota(ctx):
            self.add_to_policy(
                *publish_statements(self, topic, ctx.runtime.key, sid="DeploymentQuotaNotices")
            )
        data.acknowledge_prefixes(self.role, "reports")
        bucket_ref = f"<{logical_ref(data.bucket)}.Arn>"
        for name, what in (
            (f"datasets/*/{EVALUATION_FILE}", "the run's evaluation prompts"),
            (
                f"datasets/*/{VALIDATION_FILE}",
                "the run's validation records (sampled when it has no evaluation file)",
            ),
            (
                "reports/*/evaluation.json",
                "the run's evaluation report, kept between the steps of one evaluation",
            ),
        ):
            acknowledge_wildcard_resource(
                self.role, f"{bucket_ref}/{name}", f"Only {what}: one folder per run, named at run time."
            )
        acknowledge_bedrock_ids(
            self.role, "custom-model/*", "provisioned-model/*", "custom-model-deployment/*"
        )
