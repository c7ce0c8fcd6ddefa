"""ValidateDataset: reads the run's files, writes reports/<run>/validation.json, stops invalid runs."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from bedrock_finetune.settings import ValidateDatasetSettings
from stacks.parsers_layer import parsers_layer
from stacks.permissions import bucket_key_via_s3, write_reports
from stacks.pipeline_function import ARCHITECTURE, RUNTIME, PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext


class ValidateDataset(PipelineFunction):
    """The validator: the model's limits in, the report out; reads datasets/ and writes reports/.

    Its layer holds msgspec and orjson, the validator's fast path (the standard library's json
    gives the same report, slower).
    """

    def __init__(self, scope: Construct, *, ctx: TaskContext) -> None:
        config = ctx.config
        settings = ValidateDatasetSettings(
            base_model_id=config.base_model_id,
            model_spec=config.model.to_dict(),
            default_hyperparameters=dict(config.hyperparameters),
            chars_per_token=config.chars_per_token,
        )
        super().__init__(
            scope,
            "ValidateDataset",
            runtime=ctx.runtime,
            module="validate_dataset",
            description=(
                "Validates a run's dataset and hyperparameters and writes reports/<run>/validation.json"
            ),
            environment=settings.to_env(),
            timeout=Duration.minutes(15),
            memory_size=1024,
            invoked_synchronously_by=STATE_MACHINE,
            layers=[parsers_layer(scope, RUNTIME, ARCHITECTURE)],
        )
        data = ctx.data
        self.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRunFiles",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[data.datasets_arn()],
            ),
            iam.PolicyStatement(
                sid="ListRunFiles",
                actions=["s3:ListBucket"],
                resources=[data.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["datasets/*"]}},
            ),
            write_reports(data.bucket),
            iam.PolicyStatement(
                sid="FreezeValidatedFiles", actions=["s3:PutObject"], resources=[data.frozen_arn()]
            ),
            bucket_key_via_s3(
                self, ctx.runtime.key, ("kms:Decrypt", "kms:GenerateDataKey"), sid="UseBucketKeyViaS3"
            ),
        )
        data.acknowledge_prefixes(self.role, "datasets", "reports", "frozen")
