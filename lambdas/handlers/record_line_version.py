"""RecordLineVersion: add the run's version to its line's record; start the line's time to live."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.lines import record_line_version
from bedrock_finetune.settings import LineSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job``, ``mode``, ``endpoint`` (when served), ``served``, ``why``,
    ``executionArn``."""
    result = record_line_version(
        client("s3"), client("scheduler"), event.run, task=dict(event), settings=settings(LineSettings)
    )
    logger.info("line recorded", extra={"version": result["version"], "served": result["served"]})
    return result
