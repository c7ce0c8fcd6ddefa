"""The stack: wires the constructs together, grants each Lambda exactly what it needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bedrock_finetune.lineage import TAG_STACK
from stacks.bedrock_arns import BedrockArns
from stacks.bedrock_guards import BedrockGuards
from stacks.bedrock_service_role import BEDROCK_PRINCIPAL, BedrockServiceRole
from stacks.config import PipelineConfig
from stacks.dataset_bucket import DatasetBucket
from stacks.nag import (
    INLINE_POLICY_REASON,
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_only,
    acknowledge_wildcard_resource,
    logical_ref,
    nag_arn,
)
from stacks.notifications import Notifications
from stacks.pipeline_function import PipelineFunction, lambda_code, powertools_layer_arn
from stacks.trigger import UploadTrigger
from stacks.workflow import FineTuningWorkflow, WorkflowFunctions, WorkflowTiming

R = logs.RetentionDays
RETENTION_BY_DAYS = {
    1: R.ONE_DAY, 3: R.THREE_DAYS, 5: R.FIVE_DAYS, 7: R.ONE_WEEK, 14: R.TWO_WEEKS, 30: R.ONE_MONTH,
    60: R.TWO_MONTHS, 90: R.THREE_MONTHS, 120: R.FOUR_MONTHS, 150: R.FIVE_MONTHS, 180: R.SIX_MONTHS,
    365: R.ONE_YEAR, 400: R.THIRTEEN_MONTHS, 545: R.EIGHTEEN_MONTHS, 731: R.TWO_YEARS,
    1096: R.THREE_YEARS, 1827: R.FIVE_YEARS, 3653: R.TEN_YEARS,
}  # fmt: skip


@dataclass(frozen=True)
class PipelineFunctions:
    """The pipeline's Lambdas."""

    validate: PipelineFunction
    start_job: PipelineFunction
    get_job: PipelineFunction
    collect: PipelineFunction
    create_throughput: PipelineFunction
    get_throughput: PipelineFunction
    clean_up: PipelineFunction
    notify: PipelineFunction
    on_ended: PipelineFunction


class FineTuningPipelineStack(Stack):
    """Upload a dataset, get a fine-tuned Claude model served by Provisioned Throughput."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        removal = RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN
        retention = RETENTION_BY_DAYS[config.log_retention_days]
        for key_name, value in config.tags.items():
            Tags.of(self).add(key_name, value)
        if config.permissions_boundary_arn:
            iam.PermissionsBoundary.of(self).apply(
                iam.ManagedPolicy.from_managed_policy_arn(self, "Boundary", config.permissions_boundary_arn)
            )

        key = self._encryption_key(config, removal)
        data = DatasetBucket(self, "Data", key=key, removal_policy=removal)
        service_role = BedrockServiceRole(self, "BedrockServiceRole", data=data, key=key)
        notifications = Notifications(self, "Notifications", key=key, emails=config.notification_emails)
        pipeline_logs = logs.LogGroup(
            self, "PipelineLogs", retention=retention, encryption_key=key, removal_policy=removal
        )
        # Undeliverable events of both rules, and failed asynchronous runs of the clean-up Lambda.
        dead_letters = sqs.Queue(
            self,
            "TriggerDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        fns = self._create_functions(
            config,
            dead_letters=dead_letters,
            key=key,
            data=data,
            service_role=service_role,
            notifications=notifications,
            pipeline_logs=pipeline_logs,
            retention=retention,
            removal=removal,
        )
        self._grant_permissions(
            fns, key=key, data=data, service_role=service_role, notifications=notifications
        )
        # Deploy-time preflight and teardown on `cdk destroy` (see stacks/bedrock_guards.py).
        BedrockGuards(
            self,
            "Guards",
            config=config,
            key=key,
            topic=notifications.topic,
            log_retention=retention,
            removal_policy=removal,
            billing_functions=(fns.start_job.function, fns.create_throughput.function),
        )

        workflow = FineTuningWorkflow(
            self,
            "Workflow",
            functions=WorkflowFunctions(
                validate_dataset=fns.validate.function,
                start_job=fns.start_job.function,
                get_job=fns.get_job.function,
                collect_training_results=fns.collect.function,
                create_throughput=fns.create_throughput.function,
                get_throughput=fns.get_throughput.function,
                clean_up=fns.clean_up.function,
                notify=fns.notify.function,
            ),
            timing=WorkflowTiming(
                settle_seconds=config.settle_seconds,
                job_poll_seconds=config.job_poll_seconds,
                throughput_poll_seconds=config.throughput_poll_seconds,
                execution_timeout=Duration.hours(config.execution_timeout_hours),
            ),
            log_group=pipeline_logs,
        )
        state_machine = workflow.state_machine
        fns.on_ended.add_to_policy(
            iam.PolicyStatement(
                sid="ReadExecutionInput",
                actions=["states:DescribeExecution"],
                resources=[
                    f"arn:{Aws.PARTITION}:states:{self.region}:{self.account}:execution:"
                    f"{state_machine.state_machine_name}:*"
                ],
            )
        )
        UploadTrigger(
            self, "Trigger", bucket=data.bucket, state_machine=state_machine, dead_letter_queue=dead_letters
        )
        events.Rule(
            self,
            "OnExecutionEnded",
            description="Clean up after a fine-tuning execution that timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    fns.on_ended.function, dead_letter_queue=dead_letters, retry_attempts=10
                )
            ],
        )

        CfnOutput(self, "BucketName", value=data.bucket.bucket_name, description="Upload runs here")
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "TopicArn", value=notifications.topic.topic_arn, description="Run notifications")
        CfnOutput(
            self, "ServiceRoleArn", value=service_role.role.role_arn, description="Role Bedrock assumes"
        )
        self._acknowledge_findings(
            fns, data=data, service_role=service_role, state_machine=state_machine, dead_letters=dead_letters
        )
        self._describe_generated_roles(state_machine)

    def _describe_generated_roles(self, state_machine: sfn.StateMachine) -> None:
        """Give the roles CDK creates a description, so IAM (and the IAM report) says what each is for."""
        descriptions = {
            state_machine.role: "Execution role of the fine-tuning state machine: invokes its Lambdas",
            state_machine.node.try_find_child("EventsRole"): (
                "Assumed by EventBridge to start the state machine for an uploaded train.jsonl"
            ),
            self.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834"): (
                "CDK bucket-notifications handler: turns on EventBridge events for the dataset bucket"
            ),
            self.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider"): (
                "CDK auto-delete handler (removal_policy=destroy): empties the buckets on stack deletion"
            ),
        }
        for owner, description in descriptions.items():
            role = (
                owner if owner is None or isinstance(owner, iam.Role) else owner.node.try_find_child("Role")
            )
            if role is None:
                continue
            resource = role.node.default_child if isinstance(role, iam.Role) else role
            assert isinstance(resource, CfnResource)
            resource.add_property_override("Description", description)

    def _create_functions(
        self,
        config: PipelineConfig,
        *,
        dead_letters: sqs.IQueue,
        key: kms.IKey,
        data: DatasetBucket,
        service_role: BedrockServiceRole,
        notifications: Notifications,
        pipeline_logs: logs.ILogGroup,
        retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> PipelineFunctions:
        """One Lambda per task, each with its own role; environment carries the configuration."""
        stack_tag = Aws.STACK_ID
        code = lambda_code()
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", powertools_layer_arn(config.powertools_layer_version)
        )

        def function(construct_id: str, module: str, description: str, **kwargs: Any) -> PipelineFunction:
            return PipelineFunction(
                self,
                construct_id,
                module=module,
                description=description,
                code=code,
                powertools=powertools,
                key=key,
                log_retention=retention,
                removal_policy=removal,
                **kwargs,
            )

        common_tags_env = {"STACK_TAG": stack_tag, "RESOURCE_TAGS": json.dumps(dict(config.tags))}
        validate = function(
            "ValidateDataset",
            "validate_dataset",
            "Validates a run's dataset and hyperparameters and writes reports/<run>/validation.json",
            environment={
                "BASE_MODEL_ID": config.base_model_id,
                "MODEL_SPEC": json.dumps(config.model.to_dict()),
                "DEFAULT_HYPERPARAMETERS": json.dumps(dict(config.hyperparameters)),
                "CHARS_PER_TOKEN": str(config.chars_per_token),
            },
            timeout=Duration.minutes(15),
            memory_size=1024,
        )
        start_job = function(
            "StartCustomizationJob",
            "start_customization_job",
            "Starts the run's Bedrock model customization job (idempotent)",
            environment={
                "SERVICE_ROLE_ARN": service_role.role.role_arn,
                "BASE_MODEL_ID": config.base_model_id,
                "CUSTOM_MODEL_KMS_KEY_ARN": key.key_arn,
                **common_tags_env,
            },
        )
        get_job = function(
            "GetCustomizationJob", "get_customization_job", "Reports the customization job's status"
        )
        collect = function(
            "CollectTrainingResults",
            "collect_training_results",
            "Reads training metrics, writes reports/<run>/training.json, applies the quality gate",
            environment={
                "QUALITY_GATE": json.dumps(
                    {
                        "max_validation_loss": config.quality_gate.max_validation_loss,
                        "max_loss_ratio": config.quality_gate.max_loss_ratio,
                    }
                ),
                "DEFAULT_EPOCHS": str(config.default_epochs or ""),
            },
            timeout=Duration.minutes(5),
            memory_size=512,
        )
        create_throughput = function(
            "CreateProvisionedThroughput",
            "create_provisioned_throughput",
            "Buys Provisioned Throughput for the run's custom model (idempotent)",
            environment={
                "MODEL_UNITS": str(config.model_units),
                "COMMITMENT": config.commitment or "",
                **common_tags_env,
            },
        )
        get_throughput = function(
            "GetProvisionedThroughput",
            "get_provisioned_throughput",
            "Reports the Provisioned Throughput's status",
        )
        clean_up = function(
            "CleanUpFailedRun",
            "clean_up",
            "Stops a failed run's job and deletes the no-commitment throughput it bought",
            timeout=Duration.minutes(2),
        )
        notify_env = {
            "TOPIC_ARN": notifications.topic.topic_arn,
            "BUCKET_NAME": data.bucket.bucket_name,
            "PIPELINE_LOG_GROUP": pipeline_logs.log_group_name,
        }
        notify = function(
            "Notify", "notify", "Publishes a run's outcome to the notification topic", environment=notify_env
        )
        on_ended = function(
            "CleanUpEndedExecution",
            "on_execution_ended",
            "Cleans up after executions that timed out or were aborted, and notifies",
            environment=notify_env,
            timeout=Duration.minutes(2),
            # EventBridge invokes it asynchronously: events whose clean-up keeps failing are kept.
            dead_letter_queue=dead_letters,
        )
        return PipelineFunctions(
            validate=validate,
            start_job=start_job,
            get_job=get_job,
            collect=collect,
            create_throughput=create_throughput,
            get_throughput=get_throughput,
            clean_up=clean_up,
            notify=notify,
            on_ended=on_ended,
        )

    def _grant_permissions(
        self,
        fns: PipelineFunctions,
        *,
        key: kms.IKey,
        data: DatasetBucket,
        service_role: BedrockServiceRole,
        notifications: Notifications,
    ) -> None:
        """Exactly what each Lambda needs: named resources, KMS only via the service that uses it."""
        arns = BedrockArns(self, self.config.base_model_id)
        stack_tag = Aws.STACK_ID
        # ---- permissions, one statement per need ----
        s3_via = {"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}}
        bedrock_via = {"StringEquals": {"kms:ViaService": f"bedrock.{self.region}.amazonaws.com"}}
        sns_via = {"StringEquals": {"kms:ViaService": f"sns.{self.region}.amazonaws.com"}}
        owned_by_stack = {"StringEquals": {f"aws:ResourceTag/{TAG_STACK}": stack_tag}}

        def write_reports() -> iam.PolicyStatement:
            return iam.PolicyStatement(
                sid="WriteReports", actions=["s3:PutObject"], resources=[data.reports_arn()]
            )

        def bucket_key_via_s3() -> iam.PolicyStatement:
            return iam.PolicyStatement(
                sid="UseBucketKeyViaS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
                conditions=s3_via,
            )

        fns.validate.add_to_policy(
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
            write_reports(),
            bucket_key_via_s3(),
        )
        fns.start_job.add_to_policy(
            iam.PolicyStatement(
                sid="CreateJobForBaseModel",
                actions=["bedrock:CreateModelCustomizationJob", "bedrock:TagResource"],
                resources=[arns.foundation_model, arns.custom_models, arns.jobs],
            ),
            iam.PolicyStatement(
                sid="FindExistingJob", actions=["bedrock:GetModelCustomizationJob"], resources=[arns.jobs]
            ),
            iam.PolicyStatement(
                sid="PassServiceRoleToBedrock",
                actions=["iam:PassRole"],
                resources=[service_role.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": BEDROCK_PRINCIPAL}},
            ),
            iam.PolicyStatement(
                sid="EncryptCustomModelViaBedrock",
                actions=["kms:DescribeKey", "kms:GenerateDataKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions=bedrock_via,
            ),
        )
        fns.get_job.add_to_policy(
            iam.PolicyStatement(
                sid="ReadJob", actions=["bedrock:GetModelCustomizationJob"], resources=[arns.jobs]
            )
        )
        fns.collect.add_to_policy(
            iam.PolicyStatement(
                sid="ListJobOutputs",
                actions=["s3:ListBucket"],
                resources=[data.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["outputs/*"]}},
            ),
            iam.PolicyStatement(
                sid="ReadJobOutputs", actions=["s3:GetObject"], resources=[data.outputs_arn()]
            ),
            write_reports(),
            bucket_key_via_s3(),
        )
        fns.create_throughput.add_to_policy(
            iam.PolicyStatement(
                sid="CreateThroughputForCustomModels",
                actions=["bedrock:CreateProvisionedModelThroughput", "bedrock:TagResource"],
                resources=[arns.custom_models, arns.provisioned_models],
            ),
            iam.PolicyStatement(
                sid="FindExistingThroughput",
                actions=["bedrock:GetProvisionedModelThroughput"],
                resources=[arns.provisioned_models],
            ),
            iam.PolicyStatement(
                sid="UseCustomModelKeyViaBedrock",
                actions=["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions=bedrock_via,
            ),
        )
        fns.get_throughput.add_to_policy(
            iam.PolicyStatement(
                sid="ReadThroughput",
                actions=["bedrock:GetProvisionedModelThroughput"],
                resources=[arns.provisioned_models],
            )
        )
        for cleaner in (fns.clean_up, fns.on_ended):
            cleaner.add_to_policy(
                iam.PolicyStatement(
                    sid="FindRunResources",
                    actions=["bedrock:GetModelCustomizationJob", "bedrock:GetProvisionedModelThroughput"],
                    resources=[arns.jobs, arns.provisioned_models],
                ),
                iam.PolicyStatement(
                    sid="StopJobsOfThisStack",
                    actions=["bedrock:StopModelCustomizationJob"],
                    resources=[arns.jobs],
                    conditions=owned_by_stack,
                ),
                iam.PolicyStatement(
                    sid="DeleteThroughputOfThisStack",
                    actions=["bedrock:DeleteProvisionedModelThroughput"],
                    resources=[arns.provisioned_models],
                    conditions=owned_by_stack,
                ),
            )
        for publisher in (fns.notify, fns.on_ended):
            publisher.add_to_policy(
                iam.PolicyStatement(
                    sid="WriteRunRecords", actions=["s3:PutObject"], resources=[data.reports_arn()]
                ),
                iam.PolicyStatement(
                    sid="EncryptRunRecordsViaS3",
                    actions=["kms:GenerateDataKey"],
                    resources=[key.key_arn],
                    conditions=s3_via,
                ),
                iam.PolicyStatement(
                    sid="PublishNotifications",
                    actions=["sns:Publish"],
                    resources=[notifications.topic.topic_arn],
                ),
                iam.PolicyStatement(
                    sid="EncryptNotificationsViaSns",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions=sns_via,
                ),
            )

    def _acknowledge_findings(
        self,
        fns: PipelineFunctions,
        *,
        data: DatasetBucket,
        service_role: BedrockServiceRole,
        state_machine: sfn.StateMachine,
        dead_letters: sqs.Queue,
    ) -> None:
        """cdk-nag: what remains after scoping, and why (each on the narrowest construct)."""
        # ---- cdk-nag: what remains after scoping, and why ----
        bucket_ref = f"<{logical_ref(data.bucket)}.Arn>"
        prefix_reason = {
            "datasets": "Run folders are named by developers at upload time; limited to datasets/.",
            "reports": "Reports are written per run under reports/<run>/; limited to reports/.",
            "outputs": "Bedrock writes job outputs under outputs/<run>/ with generated names.",
        }
        for construct, prefixes in (
            (service_role.role, ("datasets", "outputs")),
            (fns.validate.role, ("datasets", "reports")),
            (fns.collect.role, ("outputs", "reports")),
            (fns.notify.role, ("reports",)),
            (fns.on_ended.role, ("reports",)),
        ):
            for prefix in prefixes:
                acknowledge_wildcard_resource(construct, f"{bucket_ref}/{prefix}/*", prefix_reason[prefix])
        bedrock_reason = {
            "custom-model/*": "Custom model IDs are generated by Bedrock; this account and region only.",
            "model-customization-job/*": "Job IDs are generated by Bedrock; this account and region only.",
            "provisioned-model/*": (
                "Provisioned model IDs are generated by Bedrock; limited to this account and region, and "
                "deletion to resources tagged with this stack."
            ),
        }
        for fn, resources in (
            (fns.start_job, ("custom-model/*", "model-customization-job/*")),
            (fns.get_job, ("model-customization-job/*",)),
            (fns.create_throughput, ("custom-model/*", "provisioned-model/*")),
            (fns.get_throughput, ("provisioned-model/*",)),
            (fns.clean_up, ("model-customization-job/*", "provisioned-model/*")),
            (fns.on_ended, ("model-customization-job/*", "provisioned-model/*")),
        ):
            for resource in resources:
                acknowledge_wildcard_resource(
                    fn.role, nag_arn(self, "bedrock", resource), bedrock_reason[resource]
                )
        acknowledge_wildcard_resource(
            fns.on_ended.role,
            nag_arn(self, "states", f"execution:<{logical_ref(state_machine)}.Name>:*"),
            "Executions of this state machine only; their names are generated per run.",
        )
        sm_role = state_machine.role
        acknowledge_wildcard_resource(
            sm_role,
            "*",
            "Only X-Ray tracing and CloudWatch Logs vended delivery, whose actions have no resource type.",
        )
        for fn in (
            fns.validate,
            fns.start_job,
            fns.get_job,
            fns.collect,
            fns.create_throughput,
            fns.get_throughput,
            fns.clean_up,
            fns.notify,
        ):
            acknowledge_wildcard_resource(
                sm_role,
                f"<{logical_ref(fn.function)}.Arn>:*",
                "Versions and aliases of the pipeline's own function (granted by the LambdaInvoke task).",
            )
        acknowledge(
            dead_letters,
            "Serverless-SQSRedrivePolicy",
            "This queue is itself the dead-letter queue (EventBridge targets, clean-up Lambda); nothing "
            "consumes it automatically, so there is nothing to redrive to.",
        )
        for fn in (
            fns.validate,
            fns.start_job,
            fns.get_job,
            fns.collect,
            fns.create_throughput,
            fns.get_throughput,
            fns.clean_up,
            fns.notify,
        ):
            acknowledge_synchronous_only(
                fn.function, "the state machine (LambdaInvoke, with retries and catch)"
            )
        for role in (service_role.role, state_machine.role):
            acknowledge_inline_policy(role, INLINE_POLICY_REASON)
        events_role = state_machine.node.try_find_child("EventsRole")
        if events_role is not None:
            acknowledge_inline_policy(events_role, INLINE_POLICY_REASON)
        for bucket in (data.bucket, data.access_logs):
            acknowledge(
                bucket,
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "Cross-region replication would copy training data out of the deployment region, which is "
                "a data-residency decision for the account owner; versioning and the retain policy "
                "protect against deletion.",
            )
        acknowledge(
            data.access_logs,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS; "
            "this log bucket uses SSE-S3 and refuses non-TLS access.",
        )
        notifications_handler = self.node.try_find_child(
            "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
        )
        if notifications_handler is not None:
            acknowledge(
                notifications_handler,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's bucket-notifications custom resource (turns on EventBridge for the bucket) creates "
                "this role; CDK offers no way to replace its managed logging policy.",
            )
        handler_policy = data.bucket.node.try_find_child("Notifications")
        if handler_policy is not None:
            acknowledge(
                handler_policy.node.find_child("HandlerPolicy"),
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK's bucket-notifications custom resource attaches s3:PutBucketNotification on this one "
                "bucket to its handler role as an inline policy; CDK offers no managed-policy option.",
            )

    def _encryption_key(self, config: PipelineConfig, removal: RemovalPolicy) -> kms.IKey:
        """The configured key, or a new key with rotation whose policy lets CloudWatch Logs use it."""
        if config.kms_key_arn:
            return kms.Key.from_key_arn(self, "Key", config.kms_key_arn)
        key = kms.Key(
            self,
            "Key",
            description="Encrypts the fine-tuning pipeline's data, custom models, logs and notifications",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccountsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                # The documented wildcards (Encrypt*, Decrypt*, ReEncrypt*, GenerateDataKey*, Describe*)
                # spelled out, without the data-key-pair actions CloudWatch Logs never calls.
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:DescribeKey",
                ],
                resources=["*"],  # in a key policy, "*" means this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{self.region}:{self.account}:log-group:*"
                        )
                    }
                },
            )
        )
        return key
