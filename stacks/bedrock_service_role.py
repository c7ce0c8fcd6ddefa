"""The role Bedrock assumes to run customization jobs: reads frozen/* (validated copies), writes outputs/*."""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from bedrock_finetune.layout import FROZEN_PREFIX, OUTPUTS_PREFIX
from stacks.dataset_bucket import DatasetBucket
from stacks.nag import INLINE_POLICY_REASON, acknowledge_inline_policy

BEDROCK_PRINCIPAL = "bedrock.amazonaws.com"


def customization_job_arn_pattern(scope: Construct) -> str:
    """``arn:<partition>:bedrock:<region>:<account>:model-customization-job/*``."""
    stack = Stack.of(scope)
    return f"arn:{Aws.PARTITION}:bedrock:{stack.region}:{stack.account}:model-customization-job/*"


class BedrockServiceRole(Construct):
    """Trusted by Bedrock only, for this account's customization jobs (confused-deputy guarded)."""

    def __init__(self, scope: Construct, construct_id: str, *, data: DatasetBucket, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.role = iam.Role(
            self,
            "Role",
            description="Assumed by Amazon Bedrock to read training data and write job outputs",
            assumed_by=iam.ServicePrincipal(
                BEDROCK_PRINCIPAL,
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": customization_job_arn_pattern(self)},
                },
            ),
        )
        bucket = data.bucket
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadFrozenDatasets",
                actions=["s3:GetObject"],
                resources=[data.frozen_arn()],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOutputs",
                actions=["s3:PutObject"],
                resources=[data.outputs_arn()],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRunPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{FROZEN_PREFIX}*", f"{OUTPUTS_PREFIX}*"]}},
            )
        )
        # The bucket is SSE-KMS: reading needs Decrypt, writing needs GenerateDataKey, both via S3 only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="UseBucketKeyViaS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
            )
        )
        data.acknowledge_prefixes(self.role, "frozen", "outputs")
        acknowledge_inline_policy(self.role, INLINE_POLICY_REASON)
        # Bedrock encrypts the custom model with the app key and creates grants for itself.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptCustomModelViaBedrock",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey", "kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"bedrock.{stack.region}.amazonaws.com"}},
            )
        )
