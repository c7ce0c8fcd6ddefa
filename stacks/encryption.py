"""The pipeline's encryption key: data, custom models, logs, notifications and Lambda environments."""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

#: What CloudWatch Logs does with the key for the stack's log groups: the documented wildcards (Encrypt*,
#: Decrypt*, ReEncrypt*, GenerateDataKey*, Describe*) spelled out, without the data-key-pair actions
#: CloudWatch Logs never calls
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
LOGS_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)


def encryption_key(scope: Construct, *, kms_key_arn: str | None, removal_policy: RemovalPolicy) -> kms.IKey:
    """The configured key, or a new key with rotation whose policy lets CloudWatch Logs use it."""
    if kms_key_arn:
        return kms.Key.from_key_arn(scope, "Key", kms_key_arn)
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        "Key",
        description="Encrypts the fine-tuning pipeline's data, custom models, logs and notifications",
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogsForThisAccountsLogGroups",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=list(LOGS_KEY_ACTIONS),
            resources=["*"],  # in a key policy, "*" means this key
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{Aws.PARTITION}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )
    return key
