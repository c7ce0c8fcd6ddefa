"""CleanUpEndedExecution: after an execution timed out or was aborted (EventBridge rule target)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.ended_execution import clean_up_ended_execution
from bedrock_finetune.settings import NotifySettings
from handlers._runtime import client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
@typed_errors
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: a "Step Functions Execution Status Change" event."""
    detail = event.detail
    logger.append_keys(correlation_id=detail.get("name"))
    result = clean_up_ended_execution(
        client("bedrock"),
        client("s3"),
        client("sns"),
        settings(NotifySettings),
        detail=detail,
        describe_execution=lambda arn: client("stepfunctions").describe_execution(executionArn=arn),
    )
    logger.info("clean-up after ended execution", extra={"status": detail.get("status"), **result})
    return result
