"""GetEndpointStatus: whether the line's endpoint serves the new model yet, for the waiting loop."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.serving import endpoint_status
from bedrock_finetune.settings import ServingSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``endpoint`` (the Serve model result).

    Output: it, with ``state``, ``status``, ``failureMessage``, ``polls`` and ``waitSeconds``."""
    cap = settings(ServingSettings).endpoint_poll_cap_seconds
    status = endpoint_status(client("bedrock"), event["endpoint"], poll_cap_seconds=cap)
    logger.info(
        "endpoint status",
        extra={"status": status["status"], "state": status["state"], "next": status["waitSeconds"]},
    )
    return status
