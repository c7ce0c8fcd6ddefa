"""The training queue's states in the fine-tuning state machine (function: stacks/tasks/training_queue.py).

    Upload is a run? -> Join the training queue -> Let uploads settle -> Validate dataset
      -> Take a training slot -> Training slot taken? -(granted)-> Start customization job
                                       (otherwise) -> Waiting for a training slot -> Take a training slot
    Start customization job -(BedrockQuotaExceeded: the account's jobs are all busy)-> Take a training slot
      (which keeps the run's slot and answers "waiting", with back-off and a notice)

The slot is given back when the job ends, whatever its status, by JobEnded as it wakes the run
(stacks/tasks/job_wait.py): no state of the run's is needed for it. Every other failure gives it back
in the failure chain's clean-up; an aborted or timed-out execution, in the clean-up of ended
executions. The pattern: the
Step Functions semaphore with DynamoDB conditional writes
(https://aws.amazon.com/blogs/compute/controlling-concurrency-in-distributed-systems-using-aws-step-functions/).
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from bedrock_finetune.errors import BedrockQuotaExceeded

#: Where the queue keeps its state in the execution (the ticket's order, the waits so far...).
QUEUE_PATH = "$.queue"

#: A catch to add before a task's catch-all: (errors, next state, result path).
Catch = tuple[list[str], sfn.IChainable, str]


class TrainingQueueStates:
    """Builds the queue's states in ``scope`` (the workflow) from its pipeline-task factories."""

    def __init__(
        self,
        scope: Construct,
        function: lambda_.IFunction,
        *,
        pipeline_task: Callable[..., tasks.LambdaInvoke],
        lambda_task: Callable[..., tasks.LambdaInvoke],
    ) -> None:
        self._scope = scope
        self._function = function
        self._lambda_task = lambda_task
        run = sfn.JsonPath.object_at("$.run")
        self.join = pipeline_task(
            "Join the training queue",
            function,
            {"action": "join", "run": run, "startedAt": sfn.JsonPath.string_at("$$.Execution.StartTime")},
            result_path=QUEUE_PATH,
        )
        self.take = pipeline_task(
            "Take a training slot",
            function,
            {"action": "take", "run": run, "queue": sfn.JsonPath.object_at(QUEUE_PATH)},
            result_path=QUEUE_PATH,
        )
        self.wait = sfn.Wait(
            scope,
            "Waiting for a training slot",
            comment="Back-off chosen by the queue: 2, 4, 8 minutes..., then at most max(10 min, job poll)",
            time=sfn.WaitTime.seconds_path(f"{QUEUE_PATH}.waitSeconds"),
        )
        self.taken = sfn.Choice(scope, "Training slot taken?")
        self.wait.next(self.take)
        self.take.next(self.taken)

    def around(self, before: sfn.IChainable, start_job: sfn.IChainable) -> None:
        """Join the training queue -> ``before`` (settle, validate) -> Take a training slot -> (granted)
        ``start_job``."""
        self.join.next(before).next(self.take)
        self.then(start_job)

    def then(self, start_job: sfn.IChainable) -> None:
        """With a slot, start the job; without one, wait and ask again."""
        self.taken.when(sfn.Condition.string_equals(f"{QUEUE_PATH}.status", "granted"), start_job).otherwise(
            self.wait
        )

    def on_bedrock_quota(self) -> Catch:
        """The catch for "Start customization job": Bedrock's quota refused the job, so the run keeps its
        slot and waits (the Take state sees ``$.queue.refusal``)."""
        return [BedrockQuotaExceeded.__name__], self.take, f"{QUEUE_PATH}.refusal"
