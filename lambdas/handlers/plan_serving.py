"""PlanServing: what serving this version means (create or update the line's endpoint), whether it
waits for approval, and its estimated price."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.serving import plan_serving
from bedrock_finetune.settings import ServingSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (with ``outputModelArn``). Output: the serving plan."""
    plan = plan_serving(client("bedrock"), event.run, event.job, settings(ServingSettings))
    logger.info(
        "serving plan", extra={k: plan[k] for k in ("mode", "action", "endpointName", "approvalNeeded")}
    )
    return plan
