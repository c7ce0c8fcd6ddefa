"""NotifySuccess / NotifyFailure: publish the run's outcome to the notification topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.notifications import Links, failure_notice, publish, success_notice
from handlers._runtime import CORRELATION_ID_PATH, client, env, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``outcome`` ("succeeded" or "failed"), ``state`` (the execution state), ``executionArn``.

    Output: ``subject``, ``error`` and ``cause`` (used by the Fail state), ``messageId``.
    """
    links = Links(region=env("AWS_REGION"), bucket=env("BUCKET_NAME"), log_group=env("PIPELINE_LOG_GROUP"))
    state = event["state"]
    outcome = event["outcome"]
    build = success_notice if outcome == "succeeded" else failure_notice
    notice = build(state, links, event["executionArn"])
    run = (state.get("run") or {}).get("run", "")
    message_id = publish(client("sns"), env("TOPIC_ARN"), notice, outcome, run)
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_metric(name="RunsFinished", unit=MetricUnit.Count, value=1)
    logger.info("notification published", extra={"subject": notice.subject, "messageId": message_id})
    return {**notice.as_output(), "messageId": message_id}
