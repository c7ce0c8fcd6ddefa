"""CreateProvisionedThroughput: buy Provisioned Throughput for the new custom model (idempotently)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.bedrock_jobs import create_provisioned_throughput
from bedrock_finetune.settings import CreateProvisionedThroughputSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (with ``outputModelArn``), ``executionArn``."""
    result = create_provisioned_throughput(
        client("bedrock"),
        event.run,
        event.job,
        event.execution_arn,
        settings(CreateProvisionedThroughputSettings),
    )
    logger.info("provisioned throughput", extra=result)
    if not result["reused"]:
        metrics.add_metric(name="ThroughputsCreated", unit=MetricUnit.Count, value=1)
    return result
