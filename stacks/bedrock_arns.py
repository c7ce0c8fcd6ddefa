"""ARN patterns of this account's Bedrock resources, shared by every construct that grants on them."""

from __future__ import annotations

from aws_cdk import Aws, Stack
from constructs import Construct


class BedrockArns:
    """ARN patterns of this account's Bedrock resources, and of the configured base model."""

    def __init__(self, scope: Construct, base_model_id: str) -> None:
        stack = Stack.of(scope)
        prefix = f"arn:{Aws.PARTITION}:bedrock:{stack.region}"
        self.foundation_model = f"{prefix}::foundation-model/{base_model_id}"
        self.custom_models = f"{prefix}:{stack.account}:custom-model/*"
        self.jobs = f"{prefix}:{stack.account}:model-customization-job/*"
        self.provisioned_models = f"{prefix}:{stack.account}:provisioned-model/*"
