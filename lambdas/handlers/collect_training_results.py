"""CollectTrainingResults: what training achieved, the training report, and the quality gate."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.metrics import RUN_DIMENSION
from bedrock_finetune.settings import CollectTrainingResultsSettings
from bedrock_finetune.training_metrics import (
    collect_training_results,
    reported_metrics,
    require_quality_gate,
)
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (completed). Output: the training summary with ``qualityGate``; a gate
    not met raises QualityGateNotMet (after the report and the metrics)."""
    run = event.run
    results = collect_training_results(
        client("s3"), run, event.job, event.execution_arn, settings(CollectTrainingResultsSettings)
    )
    for metric_name, value in reported_metrics(results):
        # The run as a dimension, so each run's losses can be charted and compared.
        with single_metric(name=metric_name, unit=MetricUnit.NoUnit, value=value) as metric:
            metric.add_dimension(name=RUN_DIMENSION, value=run.run)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("training results", extra=results)
    require_quality_gate(results)
    return results
