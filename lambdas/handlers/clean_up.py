"""Clean up failed run: stop the run's job and delete throughput it bought (state machine task)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.naming import identity_from_run, names_for
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``failure``. Output: what was cleaned up, with a ``summary``."""
    run = event["run"]
    result = clean_up_run(client("bedrock"), names_for(run["run"], identity_from_run(run)))
    logger.info("clean-up", extra=result)
    return result
