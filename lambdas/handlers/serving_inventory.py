"""ServingInventory (hourly): publishes what the stack's lines serve, for the alarms and the dashboard."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune import metrics as names
from bedrock_finetune import pricing
from bedrock_finetune.lines import serving_inventory
from bedrock_finetune.settings import InventorySettings
from handlers._runtime import client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@typed_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: the schedule's event (unused). Output: the inventory, also published as metrics."""
    config = settings(InventorySettings)
    per_hour = pricing.throughput_estimate(
        pricing.prices_for(config.base_model_id, config.prices), config.model_units, config.commitment
    )["per_hour"].amount

    def hourly_cost(endpoint: dict[str, Any]) -> float | None:
        # An on-demand deployment bills per token only: nothing by the hour.
        return per_hour if endpoint.get("kind") == "provisioned_throughput" else 0.0

    inventory = serving_inventory(client("s3"), config.bucket_name, hourly_cost=hourly_cost)
    for name, key in (
        (names.ENDPOINTS_IN_SERVICE, "endpointsInService"),
        (names.ENDPOINTS_PAST_TTL, "endpointsPastTtl"),
        (names.APPROVALS_WAITING_OVER_A_DAY, "approvalsWaitingOverADay"),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=inventory[key])
    metrics.add_metric(
        name=names.ENDPOINT_HOURLY_COST_ESTIMATE,
        unit=MetricUnit.NoUnit,
        value=inventory["endpointHourlyCostEstimate"],
    )
    logger.info("serving inventory", extra=inventory)
    return inventory
