"""ExpireThroughput: a line's time-to-live schedule fired: remind, or delete its throughput."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.common import DictWrapper
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.lines import on_time_to_live
from bedrock_finetune.settings import LineSettings
from handlers._runtime import client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=DictWrapper)
@typed_errors
def handler(event: DictWrapper, context: LambdaContext) -> dict[str, Any]:
    """Input (the schedule's): ``action`` (remind or expire), ``bucket``, ``line``, ``endpointArn``,
    ``scheduledTime``."""
    result = on_time_to_live(
        client("bedrock"), client("s3"), client("sns"), event=dict(event), settings=settings(LineSettings)
    )
    logger.info("time to live", extra={"done": result["done"], "line": event.get("line")})
    return result
