"""StartCustomizationJob: start the run's Bedrock model customization job (idempotently)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.bedrock_jobs import JobRequest, start_job
from bedrock_finetune.catalog import to_bedrock_hyperparameters
from bedrock_finetune.layout import RunLocation
from bedrock_finetune.lineage import lineage_tags
from bedrock_finetune.naming import identity_from_run, names_for
from handlers._runtime import CORRELATION_ID_PATH, client, env, env_json, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``validation`` (the validator's summary), ``executionArn``."""
    run, validation = event["run"], event["validation"]
    location = RunLocation(bucket=run["bucket"], run=run["run"])
    identity = identity_from_run(run)
    tags = lineage_tags(
        run=run["run"],
        identity=identity,
        execution_arn=event["executionArn"],
        stack_tag=env("STACK_TAG"),
        extra=env_json("RESOURCE_TAGS", {}),
    )
    request = JobRequest(
        names=names_for(run["run"], identity),
        role_arn=env("SERVICE_ROLE_ARN"),
        base_model_id=env("BASE_MODEL_ID"),
        training_uri=location.uri("train.jsonl"),
        validation_uri=location.uri("validation.jsonl") if validation.get("hasValidation") else None,
        output_uri=location.output_uri,
        hyperparameters=to_bedrock_hyperparameters(validation.get("hyperparameters", {})),
        kms_key_arn=env("CUSTOM_MODEL_KMS_KEY_ARN", "") or None,
        tags=tags,
    )
    result = start_job(client("bedrock"), request)
    logger.info("customization job", extra=result)
    if not result["reused"]:
        metrics.add_metric(name="JobsStarted", unit=MetricUnit.Count, value=1)
    return {**result, "hyperparameters": request.hyperparameters}
