"""GetProvisionedThroughput: report the throughput's status for the polling loop."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.bedrock_jobs import describe_throughput
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``throughput`` with ``provisionedModelArn``. Output: its status shape."""
    pt = describe_throughput(client("bedrock"), event["throughput"]["provisionedModelArn"])
    logger.info("throughput status", extra={"status": pt["status"]})
    return {**event["throughput"], **pt}
