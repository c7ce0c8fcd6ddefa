"""GetProvisionedThroughput: report the throughput's status for the polling loop."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.bedrock_jobs import describe_throughput
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``throughput`` with ``provisionedModelArn``. Output: its status shape."""
    throughput = event.throughput
    status = describe_throughput(client("bedrock"), throughput["provisionedModelArn"])
    logger.info("throughput status", extra={"status": status["status"]})
    return {**throughput, **status}
