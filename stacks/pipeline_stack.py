"""The stack: wires the pipeline's constructs together and publishes its outputs.

Each task's function, settings, permissions and cdk-nag reasons live in its own construct under
:mod:`stacks.tasks`; nothing here grants a permission.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.bedrock_guards import BedrockGuards
from stacks.bedrock_service_role import BedrockServiceRole
from stacks.config import LOG_RETENTION_DAYS, PipelineConfig
from stacks.dataset_bucket import DatasetBucket
from stacks.encryption import encryption_key
from stacks.notifications import Notifications
from stacks.permissions import BedrockArns
from stacks.pipeline_function import FunctionRuntime
from stacks.tasks import (
    CleanUpEndedExecution,
    CleanUpFailedRun,
    CollectTrainingResults,
    CreateProvisionedThroughput,
    GetCustomizationJob,
    GetProvisionedThroughput,
    Notify,
    StartCustomizationJob,
    TaskContext,
    TrainingQueue,
    TrainingQueueTable,
    ValidateDataset,
)
from stacks.trigger import UploadTrigger, dead_letter_queue
from stacks.workflow import FineTuningWorkflow, WorkflowFunctions, WorkflowTiming


class FineTuningPipelineStack(Stack):
    """Upload a dataset, get a fine-tuned model served, with every outcome reported."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        removal = RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN
        retention = logs.RetentionDays[LOG_RETENTION_DAYS[config.log_retention_days]]
        for key_name, value in config.tags.items():
            Tags.of(self).add(key_name, value)
        if config.permissions_boundary_arn:
            iam.PermissionsBoundary.of(self).apply(
                iam.ManagedPolicy.from_managed_policy_arn(self, "Boundary", config.permissions_boundary_arn)
            )

        # Custom models and committed throughput that outlive the stack keep their key.
        key_removal = RemovalPolicy.RETAIN if config.key_outlives_stack else removal
        key = encryption_key(self, kms_key_arn=config.kms_key_arn, removal_policy=key_removal)
        data = DatasetBucket(self, "Data", key=key, removal_policy=removal)
        service_role = BedrockServiceRole(self, "BedrockServiceRole", data=data, key=key)
        notifications = Notifications(self, "Notifications", key=key, emails=config.notification_emails)
        pipeline_logs = logs.LogGroup(
            self, "PipelineLogs", retention=retention, encryption_key=key, removal_policy=removal
        )
        dead_letters = dead_letter_queue(self)
        runtime = FunctionRuntime.create(
            self,
            powertools_layer_version=config.powertools_layer_version,
            key=key,
            log_retention=retention,
            removal_policy=removal,
        )
        queue = TrainingQueueTable(self, "TrainingQueueTable", key=key, removal_policy=removal)
        ctx = TaskContext(
            runtime=runtime,
            config=config,
            data=data,
            arns=BedrockArns(self, config.base_model_id),
            queue=queue,
        )
        training_queue = TrainingQueue(self, ctx=ctx, topic=notifications.topic)
        validate = ValidateDataset(self, ctx=ctx)
        data.protect_frozen(reader=service_role.role, writer=validate.role)
        functions = WorkflowFunctions(
            validate_dataset=validate.function,
            start_customization_job=StartCustomizationJob(self, ctx=ctx, service_role=service_role).function,
            get_customization_job=GetCustomizationJob(self, ctx=ctx).function,
            collect_training_results=CollectTrainingResults(self, ctx=ctx).function,
            create_provisioned_throughput=CreateProvisionedThroughput(self, ctx=ctx).function,
            get_provisioned_throughput=GetProvisionedThroughput(self, ctx=ctx).function,
            clean_up_failed_run=CleanUpFailedRun(self, ctx=ctx).function,
            notify=Notify(self, ctx=ctx, topic=notifications.topic, pipeline_logs=pipeline_logs).function,
            training_queue=training_queue.function,
        )
        # Deploy-time preflight and teardown on `cdk destroy` (see stacks/bedrock_guards.py).
        guards = BedrockGuards(
            self,
            "Guards",
            config=config,
            runtime=runtime,
            arns=ctx.arns,
            topic=notifications.topic,
            billing_functions=(functions.start_customization_job, functions.create_provisioned_throughput),
        )
        if guards.preflight is not None:
            training_queue.limit_from(guards.preflight)  # the account's quota, read at deploy time
        workflow = FineTuningWorkflow(
            self,
            "Workflow",
            functions=functions,
            timing=WorkflowTiming(
                settle_seconds=config.settle_seconds,
                job_poll_seconds=config.job_poll_seconds,
                throughput_poll_seconds=config.throughput_poll_seconds,
                cleanup_retry_seconds=config.cleanup_retry_seconds,
                execution_timeout=Duration.hours(config.execution_timeout_hours),
            ),
            log_group=pipeline_logs,
        )
        state_machine = workflow.state_machine
        UploadTrigger(
            self, "Trigger", bucket=data.bucket, state_machine=state_machine, dead_letter_queue=dead_letters
        )
        CleanUpEndedExecution(
            self,
            ctx=ctx,
            state_machine=state_machine,
            notify=functions.notify,
            pipeline_logs=pipeline_logs,
            dead_letters=dead_letters,
        )

        CfnOutput(self, "BucketName", value=data.bucket.bucket_name, description="Upload runs here")
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "TopicArn", value=notifications.topic.topic_arn, description="Run notifications")
        CfnOutput(
            self, "ServiceRoleArn", value=service_role.role.role_arn, description="Role Bedrock assumes"
        )
        CfnOutput(
            self,
            "TrainingQueueTableName",
            value=queue.table.table_name,
            description="The training queue (finetune runs lists it)",
        )
