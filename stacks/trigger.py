"""The trigger: an upload of ``datasets/<run>/train.jsonl`` starts one execution for that run."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from bedrock_finetune.layout import DATASETS_PREFIX, TRAIN_FILE
from stacks.nag import INLINE_POLICY_REASON, acknowledge, acknowledge_inline_policy
from stacks.permissions import describe_role


def dead_letter_queue(scope: Construct) -> sqs.Queue:
    """Undeliverable events of the pipeline's rules (the upload trigger and the ended-execution clean-up)."""
    queue = sqs.Queue(
        scope,
        "TriggerDeadLetters",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue,
        "Serverless-SQSRedrivePolicy",
        "This queue is itself the dead-letter queue of the EventBridge rule targets; nothing "
        "consumes it automatically, so there is nothing to redrive to.",
    )
    return queue


def upload_event_pattern(bucket_name: str) -> events.EventPattern:
    """S3 Object Created in this bucket for keys ``datasets/*/train.jsonl`` only.

    Reports, outputs, validation files and hyperparameters never match, so nothing the pipeline
    writes can start a run.
    """
    return events.EventPattern(
        source=["aws.s3"],
        detail_type=["Object Created"],
        detail={
            "bucket": {"name": [bucket_name]},
            "object": {"key": [{"wildcard": f"{DATASETS_PREFIX}*/{TRAIN_FILE}"}]},
        },
    )


class UploadTrigger(Construct):
    """EventBridge rule from the bucket's events to the state machine, with a dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        state_machine: sfn.IStateMachine,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "OnTrainingUpload",
            description="Start a fine-tuning run when datasets/<run>/train.jsonl is uploaded",
            event_pattern=upload_event_pattern(bucket.bucket_name),
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                state_machine,
                # The run's identity; the state machine derives the run name from the key.
                input=events.RuleTargetInput.from_object(
                    {
                        "bucket": events.EventField.from_path("$.detail.bucket.name"),
                        "key": events.EventField.from_path("$.detail.object.key"),
                        "etag": events.EventField.from_path("$.detail.object.etag"),
                        "versionId": events.EventField.from_path("$.detail.object.version-id"),
                        "sequencer": events.EventField.from_path("$.detail.object.sequencer"),
                    }
                ),
                dead_letter_queue=dead_letter_queue,
                retry_attempts=10,
            )
        )
        # The target creates this role on the state machine; say what it is for.
        events_role = state_machine.node.try_find_child("EventsRole")
        if events_role is not None:
            acknowledge_inline_policy(events_role, INLINE_POLICY_REASON)
            describe_role(
                events_role, "Assumed by EventBridge to start the state machine for an uploaded train.jsonl"
            )
