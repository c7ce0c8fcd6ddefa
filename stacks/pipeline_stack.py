"""The stack: wires the pipeline's constructs together and publishes its outputs.

Each task's function, settings, permissions and cdk-nag reasons live in its own construct under
:mod:`stacks.tasks`; nothing here grants a permission.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.bedrock_guards import BedrockGuards
from stacks.bedrock_service_role import BedrockServiceRole
from stacks.config import LOG_RETENTION_DAYS, PipelineConfig
from stacks.dataset_bucket import DatasetBucket
from stacks.encryption import encryption_key
from stacks.notifications import Notifications
from stacks.observability import Observability
from stacks.people import People
from stacks.permissions import BedrockArns
from stacks.pipeline_function import FunctionRuntime, PipelineFunction
from stacks.tasks import (
    CleanUpEndedExecution,
    CleanUpFailedRun,
    CollectTrainingResults,
    EvaluateCandidate,
    GetEndpointStatus,
    JobEnded,
    LineRecords,
    Notify,
    PlanServing,
    RequestApproval,
    ServeModel,
    ServingInventory,
    StartCustomizationJob,
    TaskContext,
    TrainingQueue,
    TrainingQueueTable,
    ValidateDataset,
    WaitForJobToEnd,
)
from stacks.tasks.serving import waits_for_deployment_quota
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
        lines = LineRecords(self, "Lines", ctx=ctx, topic=notifications.topic, dead_letters=dead_letters)
        ServingInventory(self, ctx=ctx, dead_letters=dead_letters)
        JobEnded(self, ctx=ctx, dead_letters=dead_letters)
        evaluating = config.evaluation.enabled and config.serving != "none"
        functions = WorkflowFunctions(
            validate_dataset=validate.function,
            start_customization_job=StartCustomizationJob(self, ctx=ctx, service_role=service_role).function,
            wait_for_job_to_end=WaitForJobToEnd(self, ctx=ctx).function,
            collect_training_results=CollectTrainingResults(self, ctx=ctx).function,
            plan_serving=PlanServing(self, ctx=ctx).function,
            request_approval=RequestApproval(self, ctx=ctx, topic=notifications.topic).function,
            serve_model=ServeModel(self, ctx=ctx, topic=notifications.topic).function,
            get_endpoint_status=GetEndpointStatus(self, ctx=ctx).function,
            record_line_version=lines.record.function,
            clean_up_failed_run=CleanUpFailedRun(self, ctx=ctx).function,
            notify=Notify(self, ctx=ctx, topic=notifications.topic, pipeline_logs=pipeline_logs).function,
            training_queue=training_queue.function,
            evaluate_candidate=(
                EvaluateCandidate(self, ctx=ctx, topic=notifications.topic).function if evaluating else None
            ),
        )
        # Deploy-time preflight and teardown on `cdk destroy` (see stacks/bedrock_guards.py).
        guards = BedrockGuards(
            self,
            "Guards",
            config=config,
            runtime=runtime,
            arns=ctx.arns,
            topic=notifications.topic,
            billing_functions=(
                functions.start_customization_job,
                functions.serve_model,
                *([functions.evaluate_candidate] if functions.evaluate_candidate else []),
            ),
        )
        if guards.preflight is not None:
            training_queue.limit_from(guards.preflight)  # the account's quota, read at deploy time
        workflow = FineTuningWorkflow(
            self,
            "Workflow",
            functions=functions,
            timing=WorkflowTiming(
                settle_seconds=config.settle_seconds,
                max_job_hours=config.max_job_hours,
                cleanup_retry_seconds=config.cleanup_retry_seconds,
                execution_timeout=Duration.hours(config.execution_timeout_hours),
                approval_timeout=Duration.hours(config.approval_timeout_hours),
                serving=config.serving,
                evaluation=evaluating,
                deployment_quota_wait=waits_for_deployment_quota(ctx),
            ),
            log_group=pipeline_logs,
        )
        state_machine = workflow.state_machine
        trigger = UploadTrigger(
            self, "Trigger", bucket=data.bucket, state_machine=state_machine, dead_letter_queue=dead_letters
        )
        clean_up = CleanUpEndedExecution(
            self,
            ctx=ctx,
            state_machine=state_machine,
            notify=functions.notify,
            pipeline_logs=pipeline_logs,
            dead_letters=dead_letters,
        )
        # Alarms, dashboard and the saved query of one run's logs (see stacks/observability.py).
        observability = Observability(
            self,
            "Observability",
            topic=notifications.topic,
            key=key,
            ops_topic_arn=config.ops_topic_arn,
            state_machine=state_machine,
            functions=functions,
            clean_up=clean_up,
            guards=guards,
            trigger=trigger,
            dead_letter_queues=(dead_letters,),
            pipeline_logs=pipeline_logs,
        )
        # The people's policies come last: the Reader reads every function's log group.
        People(
            self,
            "People",
            bucket=data.bucket,
            key=key,
            arns=ctx.arns,
            state_machines=[state_machine, clean_up.machine],
            log_groups=[
                pipeline_logs,
                *(c.log_group for c in self.node.find_all() if isinstance(c, PipelineFunction)),
            ],
            scheduler_role_arn=lines.scheduler_role.role_arn if lines.scheduler_role else None,
            queue_table=queue.table,
        )

        CfnOutput(self, "BucketName", value=data.bucket.bucket_name, description="Upload runs here")
        CfnOutput(self, "StateMachineArn", value=state_machine.state_machine_arn)
        CfnOutput(self, "TopicArn", value=notifications.topic.topic_arn, description="Run notifications")
        CfnOutput(
            self, "ServiceRoleArn", value=service_role.role.role_arn, description="Role Bedrock assumes"
        )
        CfnOutput(self, "ServingMode", value=config.serving, description="How each line's model is served")
        CfnOutput(
            self,
            "DashboardName",
            value=observability.dashboard.dashboard_name,
            description="CloudWatch dashboard of the pipeline",
        )
        # What `finetune` reads (submit validates with the deployed validator's settings; logs reads
        # every log group of the stack), so nothing is typed by hand.
        CfnOutput(self, "ValidateFunctionName", value=validate.function.function_name)
        log_groups = [c.log_group_name for c in self.node.find_all() if isinstance(c, logs.LogGroup)]
        CfnOutput(self, "LogGroupNames", value=Fn.join(",", log_groups), description="Comma-separated")
        CfnOutput(
            self,
            "TrainingQueueTableName",
            value=queue.table.table_name,
            description="The training queue (finetune runs lists it)",
        )
