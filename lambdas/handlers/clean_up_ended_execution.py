"""CleanUpEndedExecution: one clean-up attempt for an execution that ended without its own clean-up."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.ended_execution import clean_up_ended_execution
from bedrock_finetune.settings import CleanUpSettings
from bedrock_finetune.training_queue import run_slot
from handlers._events import TaskEvent
from handlers._runtime import client, logger, metrics, settings, tracer, typed_errors


def _last_events(execution_arn: str) -> list[dict[str, Any]]:
    history = client("stepfunctions").get_execution_history(
        executionArn=execution_arn, reverseOrder=True, maxResults=5
    )
    return list(history.get("events") or [])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``detail`` (the status change), ``previous`` attempt. Output: what was done."""
    detail = event.detail
    cleanup = settings(CleanUpSettings)
    result = clean_up_ended_execution(
        client("bedrock"),
        _last_events,
        cleanup,
        run=event.run,
        detail=detail,
        previous=event.previous,
        slot=run_slot(client("dynamodb"), cleanup.queue_table, str(detail["executionArn"])),
    )
    logger.info("clean-up after ended execution", extra={"status": detail.get("status"), **result})
    return result
