"""ValidateDataset: check the run's files in S3, write the report, and stop a bad run here."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.settings import ValidateDatasetSettings
from bedrock_finetune.validate_dataset import validate_dataset
from handlers._events import TaskEvent
from handlers._runtime import (
    CORRELATION_ID_PATH,
    client,
    logger,
    metric_sink,
    metrics,
    settings,
    tracer,
    typed_errors,
)


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``. Output: the validation summary. Raises DatasetInvalid for a bad run."""
    summary = validate_dataset(
        client("s3"), event.run, settings(ValidateDatasetSettings), metrics=metric_sink
    )
    metrics.add_metric(name="DatasetsValidated", unit=MetricUnit.Count, value=1)
    logger.info("dataset valid", extra=summary)
    return summary
