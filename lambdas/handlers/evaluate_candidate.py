"""EvaluateCandidate: one step of scoring the new version against the line's current model, as long as
the invocation's remaining time allows."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.evaluation import evaluate_candidate
from bedrock_finetune.settings import EvaluationSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``phase``, ``serving`` (the plan), ``endpoint`` (provisioned candidate),
    ``executionArn``. Output: ``done``, ``waiting``, ``passed``, ``summary`` and the report's URI."""
    result = evaluate_candidate(
        client("bedrock"),
        client("bedrock-runtime"),
        client("s3"),
        event.run,
        task=dict(event),
        settings=settings(EvaluationSettings),
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        sns=client("sns"),
    )
    logger.info("evaluation step", extra={k: result[k] for k in ("done", "scored", "prompts", "outcome")})
    if result["done"] and result["evaluated"]:
        metrics.add_metric(name="CandidatesEvaluated", unit=MetricUnit.Count, value=1)
    return result
