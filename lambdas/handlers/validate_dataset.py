"""ValidateDataset: check the run's files in S3, write the report, and stop a bad run here."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.catalog import ModelSpec
from bedrock_finetune.validate_run import validate_s3_run
from handlers._runtime import CORRELATION_ID_PATH, client, env, env_json, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``. Output: the validation summary. Raises DatasetInvalid for a bad run."""
    run = event["run"]
    model_spec = env_json("MODEL_SPEC")
    summary = validate_s3_run(
        client("s3"),
        bucket=run["bucket"],
        key=run["key"],
        version_id=run.get("versionId"),
        model=ModelSpec.from_dict(env("BASE_MODEL_ID"), model_spec, "MODEL_SPEC"),
        defaults=env_json("DEFAULT_HYPERPARAMETERS", {}),
        chars_per_token=float(env("CHARS_PER_TOKEN")),
    )
    metrics.add_metric(name="DatasetsValidated", unit=MetricUnit.Count, value=1)
    logger.info("dataset valid", extra=summary)
    return summary
