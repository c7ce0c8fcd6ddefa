"""NotifySuccess / NotifyFailure: publish the run's outcome to the notification topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.layout import RunLocation
from bedrock_finetune.notifications import (
    Links,
    failure_notice,
    publish,
    run_record,
    success_notice,
    write_run_record,
)
from handlers._runtime import CORRELATION_ID_PATH, client, env, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``outcome`` ("succeeded" or "failed"), ``state`` (the execution state), ``executionArn``.

    Output: ``subject``, ``error`` and ``cause`` (used by the Fail state), ``messageId`` and
    ``runRecord`` (``reports/<run>/run.json``, which links everything the run made).
    """
    links = Links(region=env("AWS_REGION"), bucket=env("BUCKET_NAME"), log_group=env("PIPELINE_LOG_GROUP"))
    state = event["state"]
    outcome = event["outcome"]
    build = success_notice if outcome == "succeeded" else failure_notice
    notice = build(state, links, event["executionArn"])
    run = (state.get("run") or {}).get("run", "")
    record_uri = None
    if run:
        location = RunLocation(bucket=env("BUCKET_NAME"), run=run)
        record = run_record(state, outcome, event["executionArn"], notice)
        record_uri = write_run_record(client("s3"), location.bucket, location.run_record_key, record)
    message_id = publish(client("sns"), env("TOPIC_ARN"), notice, outcome, run)
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_metric(name="RunsFinished", unit=MetricUnit.Count, value=1)
    logger.info("notification published", extra={"subject": notice.subject, "messageId": message_id})
    return {**notice.as_output(), "messageId": message_id, "runRecord": record_uri}
