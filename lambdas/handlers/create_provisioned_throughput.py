"""CreateProvisionedThroughput: buy Provisioned Throughput for the new custom model (idempotently)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.bedrock_jobs import create_throughput
from bedrock_finetune.lineage import lineage_tags
from bedrock_finetune.naming import identity_from_run, names_for
from handlers._runtime import CORRELATION_ID_PATH, client, env, env_json, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (with ``outputModelArn``), ``executionArn``."""
    run, job = event["run"], event["job"]
    identity = identity_from_run(run)
    commitment = env("COMMITMENT", "")
    result = create_throughput(
        client("bedrock"),
        names=names_for(run["run"], identity),
        model_arn=job["outputModelArn"],
        model_units=int(env("MODEL_UNITS")),
        commitment=commitment or None,
        tags=lineage_tags(
            run=run["run"],
            identity=identity,
            execution_arn=event["executionArn"],
            stack_tag=env("STACK_TAG"),
            extra=env_json("RESOURCE_TAGS", {}),
        ),
    )
    logger.info("provisioned throughput", extra=result)
    if not result["reused"]:
        metrics.add_metric(name="ThroughputsCreated", unit=MetricUnit.Count, value=1)
    return result
