"""ServeModel: create the line's endpoint for the new model, or put the model behind it (idempotent)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.serving import serve_model, wait_for_deployment_quota
from bedrock_finetune.settings import ServeModelSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``serving`` (the plan), ``executionArn``. Output: the endpoint and what was done.

    With ``quota`` (state "Handle deployment quota": Bedrock refused the deployment for a quota):
    the next wait, or the error that fails the run."""
    config = settings(ServeModelSettings)
    if "quota" in event:
        decided = wait_for_deployment_quota(
            client("sns"), event.run,
            plan=event["serving"], quota=event["quota"], execution_arn=event.execution_arn, settings=config,
        )  # fmt: skip
        logger.info("waiting for a deployment quota", extra=decided)
        return decided
    result = serve_model(client("bedrock"), event.run, event["serving"], event.execution_arn, config)
    logger.info("serving", extra={k: result[k] for k in ("endpointArn", "done", "modelArn")})
    if result["done"] == "created":
        metrics.add_metric(name="EndpointsCreated", unit=MetricUnit.Count, value=1)
    return result
