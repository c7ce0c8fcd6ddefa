"""Shared IAM building blocks: Bedrock ARN patterns, KMS via-service conditions, the stack's
ownership tag, and the statements several functions need (publish a notice, write reports)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnResource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct, IConstruct

from bedrock_finetune.layout import REPORTS_PREFIX
from bedrock_finetune.lineage import LINEAGE_TAG_KEYS, TAG_STACK


class BedrockArns:
    """ARN patterns of this account's Bedrock resources, and of the configured base model."""

    def __init__(self, scope: Construct, base_model_id: str) -> None:
        stack = Stack.of(scope)
        prefix = f"arn:{Aws.PARTITION}:bedrock:{stack.region}"
        self.foundation_model = f"{prefix}::foundation-model/{base_model_id}"
        self.custom_models = f"{prefix}:{stack.account}:custom-model/*"
        self.jobs = f"{prefix}:{stack.account}:model-customization-job/*"
        self.provisioned_models = f"{prefix}:{stack.account}:provisioned-model/*"
        self.custom_model_deployments = f"{prefix}:{stack.account}:custom-model-deployment/*"


def tag_on_create(sid: str, resources: list[str], resource_tag_keys: list[str]) -> iam.PolicyStatement:
    """Tag what the function creates, with the lineage tags and the configured tags only, and only with
    this stack's own ownership value: the role cannot stamp another stack's tag, or any other tag,
    onto a resource (clean-up and teardown trust that tag)."""
    return iam.PolicyStatement(
        sid=sid,
        actions=["bedrock:TagResource"],
        resources=resources,
        conditions={
            "ForAllValues:StringEquals": {"aws:TagKeys": [*LINEAGE_TAG_KEYS, *resource_tag_keys]},
            "StringEquals": {f"aws:RequestTag/{TAG_STACK}": Aws.STACK_ID},
        },
    )


def stop_jobs_of_this_stack(arns: BedrockArns) -> iam.PolicyStatement:
    """Stop customization jobs, only those tagged with this stack."""
    return iam.PolicyStatement(
        sid="StopJobsOfThisStack",
        actions=["bedrock:StopModelCustomizationJob"],
        resources=[arns.jobs],
        conditions=owned_by_stack(),
    )


def delete_throughput_of_this_stack(arns: BedrockArns) -> iam.PolicyStatement:
    """Delete provisioned throughput, only that tagged with this stack."""
    return iam.PolicyStatement(
        sid="DeleteThroughputOfThisStack",
        actions=["bedrock:DeleteProvisionedModelThroughput"],
        resources=[arns.provisioned_models],
        conditions=owned_by_stack(),
    )


def kms_via(scope: Construct, service: str) -> dict[str, Any]:
    """Condition: the key is used only through ``service`` (s3, bedrock, sns) in this region."""
    return {"StringEquals": {"kms:ViaService": f"{service}.{Stack.of(scope).region}.amazonaws.com"}}


def owned_by_stack() -> dict[str, Any]:
    """Condition: the resource carries this stack's ownership tag (set on everything a run creates)."""
    return {"StringEquals": {f"aws:ResourceTag/{TAG_STACK}": Aws.STACK_ID}}


def publish_statements(
    scope: Construct, topic: sns.ITopic, key: kms.IKey, *, sid: str
) -> list[iam.PolicyStatement]:
    """Publish to the pipeline's topic, and use its key through SNS only. ``sid`` names the purpose."""
    return [
        iam.PolicyStatement(sid=f"Publish{sid}", actions=["sns:Publish"], resources=[topic.topic_arn]),
        iam.PolicyStatement(
            sid=f"Encrypt{sid}ViaSns",
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions=kms_via(scope, "sns"),
        ),
    ]


def write_reports(bucket: s3.IBucket, *, sid: str = "WriteReports") -> iam.PolicyStatement:
    """Put objects under ``reports/`` only."""
    return iam.PolicyStatement(
        sid=sid, actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{REPORTS_PREFIX}*")]
    )


def bucket_key_via_s3(
    scope: Construct, key: kms.IKey, actions: tuple[str, ...], *, sid: str
) -> iam.PolicyStatement:
    """Use the bucket's key through S3 only: Decrypt to read, GenerateDataKey to write."""
    return iam.PolicyStatement(
        sid=sid, actions=list(actions), resources=[key.key_arn], conditions=kms_via(scope, "s3")
    )


def describe_role(owner: IConstruct | None, description: str) -> None:
    """Give a role CDK generates a description, so IAM (and the IAM report) says what it is for.

    ``owner`` is the role, or a construct whose child ``Role`` is it; nothing happens when it is absent.
    """
    role = owner if owner is None or isinstance(owner, iam.Role) else owner.node.try_find_child("Role")
    if role is None:
        return
    resource = role.node.default_child if isinstance(role, iam.Role) else role
    assert isinstance(resource, CfnResource), f"{role.node.path} is not a role"
    resource.add_property_override("Description", description)
