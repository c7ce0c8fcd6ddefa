"""CleanUpFailedRun: stop the run's job and delete throughput it bought (the failure chain's task)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.naming import evaluation_deployment_name
from bedrock_finetune.settings import CleanUpSettings
from bedrock_finetune.training_queue import run_slot
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``failure``, ``previous`` attempt. Output: what was done, ``retry``, ``summary``."""
    cleanup = settings(CleanUpSettings)
    result = clean_up_run(
        client("bedrock"),
        event.run.names,
        line=event.run.line,
        evaluation_deployment=evaluation_deployment_name(event.run.line, event.run.identity),
        execution_arn=event.execution_arn,
        previous=event.previous,
        max_attempts=cleanup.max_attempts,
        slot=run_slot(client("dynamodb"), cleanup.queue_table, event.execution_arn),
    )
    logger.info("clean-up", extra=result)
    return result
