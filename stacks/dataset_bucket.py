"""The dataset bucket: where developers upload runs and the pipeline writes reports and outputs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from bedrock_finetune.layout import DATASETS_PREFIX, FROZEN_PREFIX, OUTPUTS_PREFIX, REPORTS_PREFIX
from stacks.nag import acknowledge, acknowledge_wildcard_resource, logical_ref
from stacks.permissions import describe_role

#: The stack-level singletons CDK creates for this bucket (EventBridge switch, auto-delete on destroy).
_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
_AUTO_DELETE_PROVIDER = "Custom::S3AutoDeleteObjectsCustomResourceProvider"

PREFIX_REASONS = {
    "datasets": "Run folders are named by developers at upload time; limited to datasets/.",
    "reports": "Reports are written per run under reports/<run>/; limited to reports/.",
    "outputs": "Bedrock writes job outputs under outputs/<run>/ with generated names.",
    "frozen": "The validated copies of each upload, under frozen/<run>/<job name>/; limited to frozen/.",
}


class DatasetBucket(Construct):
    """SSE-KMS bucket with versioning, TLS only, no public access, access logs and EventBridge events."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY

        # S3 server access logging cannot deliver to an SSE-KMS bucket, so the log bucket uses SSE-S3.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="dataset-bucket/",
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(90),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )

        self._acknowledge()

    def _acknowledge(self) -> None:
        """cdk-nag reasons for both buckets and for what CDK generates for them; role descriptions."""
        for bucket in (self.bucket, self.access_logs):
            acknowledge(
                bucket,
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "Cross-region replication would copy training data out of the deployment region, which is "
                "a data-residency decision for the account owner; versioning and the retain policy "
                "protect against deletion.",
            )
        acknowledge(
            self.access_logs,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; "
            "this log bucket uses SSE-S3 and refuses non-TLS access.",
        )
        stack = Stack.of(self)
        notifications_handler = stack.node.try_find_child(_NOTIFICATIONS_HANDLER)
        if notifications_handler is not None:
            acknowledge(
                notifications_handler,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's bucket-notifications custom resource (turns on EventBridge for the bucket) creates "
                "this role; CDK offers no way to replace its managed logging policy.",
            )
            describe_role(
                notifications_handler,
                "CDK bucket-notifications handler: turns on EventBridge events for the dataset bucket",
            )
        handler_policy = self.bucket.node.try_find_child("Notifications")
        if handler_policy is not None:
            acknowledge(
                handler_policy.node.find_child("HandlerPolicy"),
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK's bucket-notifications custom resource attaches s3:PutBucketNotification on this one "
                "bucket to its handler role as an inline policy; CDK offers no managed-policy option.",
            )
        describe_role(
            stack.node.try_find_child(_AUTO_DELETE_PROVIDER),
            "CDK auto-delete handler (removal_policy=destroy): empties the buckets on stack deletion",
        )

    def acknowledge_prefixes(self, role: IConstruct, *prefixes: str) -> None:
        """cdk-nag: ``role`` may use objects under these prefixes (datasets, reports, outputs)."""
        bucket_ref = f"<{logical_ref(self.bucket)}.Arn>"
        for prefix in prefixes:
            acknowledge_wildcard_resource(role, f"{bucket_ref}/{prefix}/*", PREFIX_REASONS[prefix])

    def protect_frozen(self, *, reader: iam.IRole, writer: iam.IRole) -> None:
        """Only ``reader`` (the Bedrock service role) may read the frozen copies, and only ``writer``
        (the validator) may write or delete them: nothing can change what a job trains on."""
        frozen = self.frozen_arn()
        for sid, actions, allowed in (
            ("OnlyBedrockReadsFrozenDatasets", ["s3:GetObject", "s3:GetObjectVersion"], reader),
            ("OnlyTheValidatorWritesFrozenDatasets", ["s3:PutObject", "s3:DeleteObject*"], writer),
        ):
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=actions,
                    resources=[frozen],
                    conditions={"ArnNotEquals": {"aws:PrincipalArn": allowed.role_arn}},
                )
            )

    def frozen_arn(self) -> str:
        """ARN pattern of the frozen copies of validated files."""
        return self.bucket.arn_for_objects(f"{FROZEN_PREFIX}*")

    def datasets_arn(self) -> str:
        """ARN pattern of every object under ``datasets/``."""
        return self.bucket.arn_for_objects(f"{DATASETS_PREFIX}*")

    def reports_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{REPORTS_PREFIX}*")

    def outputs_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{OUTPUTS_PREFIX}*")
