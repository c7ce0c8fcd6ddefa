"""TrainingQueue: the semaphore of customization jobs (a DynamoDB table) and the function of its two
states, "Join the training queue" and "Take a training slot" (the slot is given back when the job ends:
stacks/tasks/job_wait.py).

The table is its own construct, created before the tasks: the clean-ups give a run's slot back there
too (see :func:`give_back_statements`). Its limit is the preflight's answer (``MaxConcurrentJobs``: the
configured ``max_concurrent_jobs`` never above the account's quota), or, without the preflight, the
configured value or the default.
"""

from __future__ import annotations

from aws_cdk import CustomResource, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from bedrock_finetune.preflight import JOB_LIMIT_ATTRIBUTE, effective_job_limit
from bedrock_finetune.settings import TrainingQueueSettings
from stacks.nag import ACTIONS_WITHOUT_RESOURCE_TYPE, acknowledge, acknowledge_wildcard_resource
from stacks.permissions import kms_via, publish_statements
from stacks.pipeline_function import PipelineFunction
from stacks.tasks.context import STATE_MACHINE, TaskContext, acknowledge_bedrock_ids

#: The queue is one item, read and then written only if its version is unchanged: what the queue's
#: function and the clean-ups (which give a slot back) need, and all they need.
QUEUE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem")


class TrainingQueueTable(Construct):
    """The queue's table: one item, the slots in use and a ticket per run (see
    bedrock_finetune.training_queue)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = key
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.table,
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "Point-in-time recovery is on. The table holds only the training queue's live state (who "
            "trains, who waits, for hours at most); a backup restored later would hand out slots of "
            "runs long gone, so no AWS Backup plan includes it.",
        )

    def statements(
        self, scope: Construct, actions: tuple[str, ...], *, sid: str
    ) -> list[iam.PolicyStatement]:
        """These table actions, and the table's key through DynamoDB only."""
        return [
            iam.PolicyStatement(sid=sid, actions=list(actions), resources=[self.table.table_arn]),
            iam.PolicyStatement(
                sid=f"{sid}Key",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[self.key.key_arn],
                conditions=kms_via(scope, "dynamodb"),
            ),
        ]


def give_back_statements(scope: Construct, queue: TrainingQueueTable | None) -> list[iam.PolicyStatement]:
    """A clean-up's grant on the queue: give the run's slot back (nothing without a queue)."""
    return [] if queue is None else queue.statements(scope, QUEUE_ACTIONS, sid="GiveBackTrainingSlot")


class TrainingQueue(PipelineFunction):
    """Join, take: reads and writes the queue's table, reads jobs (a lapsed lease is checked
    against the job's real status), counts the account's running jobs, publishes waiting notices."""

    def __init__(self, scope: Construct, *, ctx: TaskContext, topic: sns.ITopic) -> None:
        config, queue = ctx.config, ctx.queue
        assert queue is not None, "the training queue needs its table (TaskContext.queue)"
        settings = TrainingQueueSettings(
            queue_table=queue.table.table_name,
            max_concurrent_jobs=effective_job_limit(config.max_concurrent_jobs, None),
            max_queue_seconds=config.max_queue_hours * 3600,
            wait_cap_seconds=config.queue_wait_cap_seconds,
            lease_seconds=config.queue_lease_seconds,
            topic_arn=topic.topic_arn,
        )
        super().__init__(
            scope,
            "TrainingQueue",
            runtime=ctx.runtime,
            module="training_queue",
            description="Training queue: joins it, takes a training slot in upload order",
            environment=settings.to_env(),
            invoked_synchronously_by=STATE_MACHINE,
        )
        self.add_to_policy(
            *queue.statements(self, QUEUE_ACTIONS, sid="UseTrainingQueue"),
            iam.PolicyStatement(
                sid="CheckLapsedLeasesAgainstJobs",
                actions=["bedrock:GetModelCustomizationJob"],
                resources=[ctx.arns.jobs],
            ),
            *publish_statements(self, topic, ctx.runtime.key, sid="QueueNotices"),
        )
        self._list_running_jobs()
        acknowledge_bedrock_ids(self.role, "model-customization-job/*")

    def limit_from(self, preflight: CustomResource) -> None:
        """Let the preflight's answer set the limit: max_concurrent_jobs, never above the quota."""
        self.function.add_environment(
            TrainingQueueSettings.variable("max_concurrent_jobs"),
            preflight.get_att_string(JOB_LIMIT_ATTRIBUTE),
        )

    def _list_running_jobs(self) -> None:
        """ListModelCustomizationJobs has no resource type: its own policy, acknowledged on it alone."""
        action = "bedrock:ListModelCustomizationJobs"
        assert action in ACTIONS_WITHOUT_RESOURCE_TYPE
        policy = iam.Policy(
            self,
            "CountRunningJobsPolicy",
            roles=[self.role],
            statements=[iam.PolicyStatement(sid="CountRunningJobs", actions=[action], resources=["*"])],
        )
        acknowledge_wildcard_resource(
            policy,
            "*",
            "ListModelCustomizationJobs has no resource type; read-only. When Bedrock refuses a job for "
            "a quota, the queue counts the account's running jobs to tell the concurrent-jobs quota from "
            "others.",
        )
        acknowledge(
            policy,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "Kept as a separate inline policy of this one role so that the acknowledgment of Resource '*' "
            "covers exactly this list action; created and deleted with the role.",
        )
