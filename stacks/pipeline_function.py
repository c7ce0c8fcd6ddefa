"""One pipeline Lambda: the shared code asset, its own role, its own encrypted log group.

:class:`FunctionRuntime` is what every function of the stack shares (code asset, Powertools layer, key,
log retention, removal policy); the pipeline tasks and the guards all build their functions from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from bedrock_finetune import metrics
from stacks.nag import (
    INLINE_POLICY_REASON,
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_only,
    acknowledge_wildcard_resource,
    logical_ref,
)

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.X86_64
POWERTOOLS_SERVICE = metrics.SERVICE
METRICS_NAMESPACE = metrics.NAMESPACE


def powertools_layer_arn(version: int) -> str:
    """The public Powertools for AWS Lambda (Python) V3 layer for this runtime, in the stack's region."""
    return (
        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:017000801446:layer:"
        f"AWSLambdaPowertoolsPythonV3-python314-x86_64:{version}"
    )


@dataclass(frozen=True)
class FunctionRuntime:
    """What every function of the stack shares; created once per stack."""

    code: lambda_.Code
    powertools: lambda_.ILayerVersion
    key: kms.IKey
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy

    @classmethod
    def create(
        cls,
        scope: Construct,
        *,
        powertools_layer_version: int,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> FunctionRuntime:
        return cls(
            code=lambda_code(),
            powertools=lambda_.LayerVersion.from_layer_version_arn(
                scope, "Powertools", powertools_layer_arn(powertools_layer_version)
            ),
            key=key,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )


class PipelineFunction(Construct):
    """A Python Lambda running ``handlers.<module>.handler`` with least-privilege role and logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: FunctionRuntime,
        module: str,
        description: str,
        environment: Mapping[str, str] | None = None,
        timeout: Duration = Duration.seconds(60),
        memory_size: int = 256,
        dead_letter_queue: sqs.IQueue | None = None,
        invoked_synchronously_by: str | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> None:
        """``invoked_synchronously_by``: the only caller (e.g. the state machine), which sees every
        error itself, so no dead-letter queue is needed (acknowledged for cdk-nag). ``layers``: the
        function's own, after the shared Powertools layer."""
        super().__init__(scope, construct_id)
        key = runtime.key
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=runtime.log_retention,
            encryption_key=key,
            removal_policy=runtime.removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            description=f"Execution role of the {construct_id} Lambda",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:log-stream:*"],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=runtime.code,
            handler=f"handlers.{module}.handler",
            role=self.role,
            layers=[runtime.powertools, *layers],
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=timeout,
            memory_size=memory_size,
            dead_letter_queue=dead_letter_queue,
            environment_encryption=key,
            environment={
                "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **(environment or {}),
            },
        )
        if invoked_synchronously_by is not None:
            acknowledge_synchronous_only(self.function, invoked_synchronously_by)

        acknowledge_wildcard_resource(
            self.role,
            f"<{logical_ref(self.log_group)}.Arn>:log-stream:*",
            "Log streams are created by the Lambda runtime at run time; scoped to this function's log group.",
        )
        acknowledge_wildcard_resource(
            self.role,
            "*",
            "Only X-Ray trace upload (Lambda active tracing) uses '*': xray:PutTraceSegments and "
            "xray:PutTelemetryRecords have no resource type (see stacks/nag.py).",
        )
        acknowledge_inline_policy(self.role, INLINE_POLICY_REASON)
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls AWS service APIs (Bedrock, S3, SNS, Step Functions) over TLS and "
            "reaches no private network resource; a VPC would add NAT or endpoints and no protection.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Concurrency is bounded by the number of runs (one execution per upload); reserving "
            "concurrency takes it from the account's unreserved pool and fails deployment in accounts "
            "with the default low limit.",
        )

    def add_to_policy(self, *statements: iam.PolicyStatement) -> None:
        """Grant this function's role exactly these statements."""
        for statement in statements:
            self.role.add_to_policy(statement)


def lambda_code() -> lambda_.Code:
    """The runtime code asset, shared by every pipeline function."""
    return lambda_.Code.from_asset(
        str(LAMBDAS_DIR),
        exclude=["**/__pycache__", "**/*.pyc", "**/.mypy_cache"],
    )
