"""Customer-managed policies for the people who use a deployed stack: Submitter, Approver, Reader.

An account admin attaches them to the users, groups or roles of the team; each is a stack output.
They grant what the ``finetune`` command line needs for each job and nothing more:

* **Submitter** uploads runs (``datasets/*``) and reads ``reports/*``. Uploading ``train.jsonl`` starts a
  run through the pipeline, which validates first and waits for an approval before buying throughput.
  It cannot start an execution directly, nor answer an approval.
* **Approver** answers approval requests (the task token is in ``reports/<run>/approval.json``), and
  extends or rolls back the lines this stack serves: only throughput and deployments carrying this
  stack's ownership tag, only the schedules of this stack's serving schedule group.
* **Reader** reads reports, the executions of the pipeline's state machines, the pipeline's logs and
  the training queue (one item: who trains, who waits; ``finetune runs`` and ``finetune status``).

Each uses the stack's key only through S3 (``kms:ViaService``); the Reader also through DynamoDB, to
read the queue's encrypted table.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bedrock_finetune.layout import DATASETS_PREFIX, REPORTS_PREFIX
from stacks.dataset_bucket import PREFIX_REASONS
from stacks.nag import APPROVAL_ANSWER_REASON, acknowledge_wildcard_resource, logical_ref, nag_arn
from stacks.permissions import BedrockArns, kms_via, owned_by_stack

#: The files an approver writes in a run's report folder (the serving work's contract).
LINE_FILE = "line.json"
APPROVAL_FILE = "approval.json"
#: EventBridge Scheduler's service principal, the only service the scheduler's role may be passed to.
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"


def serving_schedule_group(stack_name: str) -> str:
    """The schedule group holding the serving schedules (expiry, reminders) of a stack."""
    return f"{stack_name}-serving"


_OBJECT_REASONS = {
    f"{DATASETS_PREFIX}*": PREFIX_REASONS["datasets"],
    f"{REPORTS_PREFIX}*": PREFIX_REASONS["reports"],
    f"{REPORTS_PREFIX}*/{LINE_FILE}": "The line record of any run folder; this one file name only.",
    f"{REPORTS_PREFIX}*/{APPROVAL_FILE}": "The approval record of any run folder; this one file name only.",
}


class People(Construct):
    """The three policies, each a stack output (``SubmitterPolicyArn``, ``ApproverPolicyArn``,
    ``ReaderPolicyArn``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey,
        arns: BedrockArns,
        state_machines: Sequence[sfn.StateMachine],
        log_groups: Sequence[logs.ILogGroup],
        scheduler_role_arn: str | None = None,
        queue_table: dynamodb.ITable | None = None,
    ) -> None:
        """``scheduler_role_arn``: the role EventBridge Scheduler runs the serving schedules as; the
        approver may pass it (to ``scheduler.amazonaws.com`` only) when extending a schedule. It
        exists only when ``throughput_ttl_hours`` is set; without it there is nothing to extend.
        ``queue_table``: the training queue's table, which the reader may read (GetItem).
        """
        super().__init__(scope, construct_id)
        self._bucket = bucket
        self._key = key
        self.submitter = self._submitter()
        self.approver = self._approver(arns, scheduler_role_arn)
        self.reader = self._reader(state_machines, log_groups, queue_table)
        for name, policy, purpose in (
            ("Submitter", self.submitter, "upload runs, read reports"),
            ("Approver", self.approver, "answer approvals, extend and roll back this stack's lines"),
            ("Reader", self.reader, "read reports, executions, logs and the training queue"),
        ):
            CfnOutput(
                Stack.of(self),
                f"{name}PolicyArn",
                value=policy.managed_policy_arn,
                description=f"Attach to the people who {purpose}",
            )

    def _objects(self, pattern: str) -> str:
        return self._bucket.arn_for_objects(pattern)

    def _read_reports(self) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                sid="ReadReports", actions=["s3:GetObject"], resources=[self._objects(f"{REPORTS_PREFIX}*")]
            ),
            iam.PolicyStatement(
                sid="ListReports",
                actions=["s3:ListBucket"],
                resources=[self._bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{REPORTS_PREFIX}*"]}},
            ),
        ]

    def _key_via_s3(self, *actions: str) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid="UseKeyThroughS3",
            actions=list(actions),
            resources=[self._key.key_arn],
            conditions=kms_via(self, "s3"),
        )

    def _policy(
        self, name: str, description: str, statements: list[iam.PolicyStatement], prefixes: Sequence[str]
    ) -> iam.ManagedPolicy:
        """The policy, with the cdk-nag reasons for the object patterns (``prefixes``) it names."""
        policy = iam.ManagedPolicy(
            self,
            name,
            description=f"{Stack.of(self).stack_name} {name}: {description}",
            statements=statements,
        )
        bucket = f"<{logical_ref(self._bucket)}.Arn>"
        for pattern in prefixes:
            acknowledge_wildcard_resource(policy, f"{bucket}/{pattern}", _OBJECT_REASONS[pattern])
        return policy

    def _submitter(self) -> iam.ManagedPolicy:
        return self._policy(
            "Submitter",
            "upload run folders under datasets/ (train.jsonl starts a run) and read reports/",
            [
                iam.PolicyStatement(
                    sid="UploadRunFolders",
                    actions=["s3:PutObject"],
                    resources=[self._objects(f"{DATASETS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ReadReports",
                    actions=["s3:GetObject"],
                    resources=[self._objects(f"{REPORTS_PREFIX}*")],
                ),
                # aws s3 sync lists the destination folder before it uploads.
                iam.PolicyStatement(
                    sid="ListRunFoldersAndReports",
                    actions=["s3:ListBucket"],
                    resources=[self._bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{DATASETS_PREFIX}*", f"{REPORTS_PREFIX}*"]}},
                ),
                self._key_via_s3("kms:GenerateDataKey", "kms:Decrypt"),
            ],
            [f"{DATASETS_PREFIX}*", f"{REPORTS_PREFIX}*"],
        )

    def _approver(self, arns: BedrockArns, scheduler_role_arn: str | None) -> iam.ManagedPolicy:
        stack = Stack.of(self)
        schedules = (
            f"arn:{Aws.PARTITION}:scheduler:{stack.region}:{stack.account}:schedule/"
            f"{serving_schedule_group(stack.stack_name)}/*"
        )
        statements = [
            *self._read_reports(),
            iam.PolicyStatement(
                sid="RecordDecisions",
                actions=["s3:PutObject"],
                resources=[
                    self._objects(f"{REPORTS_PREFIX}*/{LINE_FILE}"),
                    self._objects(f"{REPORTS_PREFIX}*/{APPROVAL_FILE}"),
                ],
            ),
            self._key_via_s3("kms:GenerateDataKey", "kms:Decrypt"),
            iam.PolicyStatement(
                sid="AnswerApprovals",
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                resources=["*"],  # no resource type: the task token is the control (APPROVAL_ANSWER_REASON)
            ),
            # Rolling back swaps the model behind the line's endpoint: both the endpoint and the model
            # it swaps to must carry this stack's tag.
            iam.PolicyStatement(
                sid="RollBackLinesOfThisStack",
                actions=["bedrock:UpdateProvisionedModelThroughput", "bedrock:UpdateCustomModelDeployment"],
                resources=[arns.provisioned_models, arns.deployments, arns.custom_models],
                conditions=owned_by_stack(),
            ),
            iam.PolicyStatement(
                sid="ReadLinesOfThisStack",
                actions=["bedrock:GetProvisionedModelThroughput", "bedrock:GetCustomModelDeployment"],
                resources=[arns.provisioned_models, arns.deployments],
                conditions=owned_by_stack(),
            ),
            iam.PolicyStatement(
                sid="ExtendServingSchedules",
                actions=["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
                resources=[schedules],
            ),
        ]
        if scheduler_role_arn is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="PassSchedulerRole",
                    actions=["iam:PassRole"],
                    resources=[scheduler_role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": SCHEDULER_PRINCIPAL}},
                )
            )
        policy = self._policy(
            "Approver",
            "answer approval requests; extend and roll back the lines of this stack only",
            statements,
            [f"{REPORTS_PREFIX}*", f"{REPORTS_PREFIX}*/{LINE_FILE}", f"{REPORTS_PREFIX}*/{APPROVAL_FILE}"],
        )
        acknowledge_wildcard_resource(policy, "*", APPROVAL_ANSWER_REASON)
        for resource, generated in (
            ("provisioned-model/*", "Throughput"),
            ("custom-model-deployment/*", "Deployment"),
            ("custom-model/*", "Custom model"),
        ):
            acknowledge_wildcard_resource(
                policy,
                nag_arn(stack, "bedrock", resource),
                f"{generated} IDs are generated by Bedrock; only those tagged with this stack.",
            )
        acknowledge_wildcard_resource(
            policy,
            nag_arn(stack, "scheduler", f"schedule/{serving_schedule_group(stack.stack_name)}/*"),
            "The schedules of this stack's serving schedule group only; their names are made per line.",
        )
        return policy

    def _reader(
        self,
        state_machines: Sequence[sfn.StateMachine],
        log_groups: Sequence[logs.ILogGroup],
        queue_table: dynamodb.ITable | None,
    ) -> iam.ManagedPolicy:
        stack = Stack.of(self)
        executions = [
            f"arn:{Aws.PARTITION}:states:{stack.region}:{stack.account}:execution:{m.state_machine_name}:*"
            for m in state_machines
        ]
        # The queue is one item, read with GetItem (bedrock_finetune.training_queue.list_queue).
        queue = (
            [
                iam.PolicyStatement(
                    sid="ReadTrainingQueue", actions=["dynamodb:GetItem"], resources=[queue_table.table_arn]
                ),
                iam.PolicyStatement(
                    sid="UseKeyThroughDynamoDB",
                    actions=["kms:Decrypt"],
                    resources=[self._key.key_arn],
                    conditions=kms_via(self, "dynamodb"),
                ),
            ]
            if queue_table is not None
            else []
        )
        policy = self._policy(
            "Reader",
            "read reports, the pipeline's executions, its logs and its training queue",
            [
                *queue,
                *self._read_reports(),
                self._key_via_s3("kms:Decrypt"),
                iam.PolicyStatement(
                    sid="ListExecutions",
                    actions=["states:ListExecutions", "states:DescribeStateMachine"],
                    resources=[m.state_machine_arn for m in state_machines],
                ),
                iam.PolicyStatement(
                    sid="FollowExecutions",
                    actions=[
                        "states:DescribeExecution",
                        "states:DescribeStateMachineForExecution",
                        "states:GetExecutionHistory",
                    ],
                    resources=executions,
                ),
                iam.PolicyStatement(
                    sid="ReadPipelineLogs",
                    actions=["logs:DescribeLogStreams", "logs:FilterLogEvents", "logs:GetLogEvents"],
                    # A log group's ARN ends in ":*", which covers its log streams.
                    resources=[g.log_group_arn for g in log_groups],
                ),
            ],
            [f"{REPORTS_PREFIX}*"],
        )
        for machine in state_machines:
            acknowledge_wildcard_resource(
                policy,
                nag_arn(stack, "states", f"execution:<{logical_ref(machine)}.Name>:*"),
                "Executions of the pipeline's state machines only; their names are generated per run.",
            )
        return policy
