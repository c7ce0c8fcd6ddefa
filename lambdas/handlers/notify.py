"""NotifySuccess / NotifyFailure: publish the run's outcome to the notification topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.notifications import notify_outcome
from bedrock_finetune.settings import NotifySettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``outcome`` ("succeeded" or "failed"), ``state`` (the execution state), ``executionArn``.

    Output: ``subject``, ``error`` and ``cause`` (used by the Fail state), ``messageId`` and
    ``runRecord`` (``reports/<run>/run.json``, which links everything the run made).
    """
    outcome = event.outcome
    result = notify_outcome(
        client("s3"),
        client("sns"),
        settings(NotifySettings),
        outcome=outcome,
        state=event.state,
        execution_arn=event.execution_arn,
    )
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_metric(name="RunsFinished", unit=MetricUnit.Count, value=1)
    logger.info(
        "notification published", extra={"subject": result["subject"], "messageId": result["messageId"]}
    )
    return result
