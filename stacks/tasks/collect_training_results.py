"""CollectTrainingResults: reads the job's metrics, writes reports/<run>/training.json, applies the gate."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from bedrock_finetune.settings import CollectTrainingResultsSettings
from stacks.permissions import bucket_key_via_s3, write_reports
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext


class CollectTrainingResults(PipelineFunction):
    """Reads outputs/ (the metrics CSVs Bedrock writes) and writes reports/."""

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        config, data = ctx.config, ctx.data
        settings = CollectTrainingResultsSettings(
            quality_gate=config.quality_gate, default_epochs=config.default_epochs or None
        )
        super().__init__(
            scope,
            "CollectTrainingResults",
            runtime=ctx.runtime,
            module="collect_training_results",
            description=(
                "Reads training metrics, writes reports/<run>/training.json, applies the quality gate"
            ),
            environment=settings.to_env(),
            timeout=Duration.minutes(5),
            memory_size=512,
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ListJobOutputs",
                actions=["s3:ListBucket"],
                resources=[data.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["outputs/*"]}},
            ),
            iam.PolicyStatement(
                sid="ReadJobOutputs", actions=["s3:GetObject"], resources=[data.outputs_arn()]
            ),
            write_reports(data.bucket),
            bucket_key_via_s3(
                self, ctx.runtime.key, ("kms:Decrypt", "kms:GenerateDataKey"), sid="UseBucketKeyViaS3"
            ),
        )
        data.acknowledge_prefixes(self.role, "outputs", "reports")
