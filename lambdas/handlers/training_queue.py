"""TrainingQueue: join the queue, take a training slot (two states, one function). The slot is given
back when the run's job ends (JobEnded), or by the clean-ups."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.metrics import QUEUE_LENGTH, TRAINING_SLOTS_IN_USE
from bedrock_finetune.settings import TrainingQueueSettings
from bedrock_finetune.training_queue import QueueTable, join_queue, take_slot
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``action`` (join or take), ``run``, ``queue`` (the ``$.queue`` state), ``executionArn``,
    ``executionName`` and, to join, ``startedAt``. Output: the new ``$.queue`` state (take: ``status``
    granted or waiting, with ``waitSeconds``)."""
    config = settings(TrainingQueueSettings)
    table = QueueTable(client("dynamodb"), config.table_name)
    action, execution_arn = str(event["action"]), event.execution_arn
    if action == "join":
        result = join_queue(
            table,
            config,
            run=event.run,
            execution_arn=execution_arn,
            execution_name=str(event["executionName"]),
            started_at=str(event["startedAt"]),
        )
    elif action == "take":
        result = take_slot(
            table, client("bedrock"), client("sns"), config,
            run=event.run, execution_arn=execution_arn, previous=dict(event.get("queue") or {}),
        )  # fmt: skip
    else:
        raise ValueError(f"unknown training queue action {action!r}: join or take")
    if "inLine" in result:  # what a Take saw: the queue's length and the slots in use
        metrics.add_metric(name=QUEUE_LENGTH, unit=MetricUnit.Count, value=result["inLine"])
        metrics.add_metric(name=TRAINING_SLOTS_IN_USE, unit=MetricUnit.Count, value=result["inUse"])
    logger.info(f"training queue: {action}", extra=result)
    return result
