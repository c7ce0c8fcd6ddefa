"""Preflight custom resource (Create, Update): fail the deploy early when Bedrock can't serve the model.

Invoked by the CDK custom-resource Provider framework. Raising fails the deployment with the error
message as the status reason; warnings come back as the ``Warnings`` attribute (a stack output) and
are published to the notification topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.preflight import custom_resource_data, preflight_for_deploy
from bedrock_finetune.settings import PreflightProperties
from handlers._runtime import client, logger, tracer, typed_errors


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
@typed_errors
def handler(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, Any]:
    """Create/Update: run the checks. Delete: nothing to undo."""
    physical_id = event.get("PhysicalResourceId") or f"{event.logical_resource_id}-preflight"
    if event.request_type == "Delete":
        return {"PhysicalResourceId": physical_id}
    properties = PreflightProperties.from_properties(event.resource_properties)
    result = preflight_for_deploy(
        client("bedrock"),
        client("service-quotas"),
        client("sns"),
        properties,
        stack=event.stack_id,
        now=datetime.now(UTC),
    )
    log = logger.warning if result.warnings else logger.info
    log("preflight passed", extra={"model": result.model_arn, "warnings": list(result.warnings)})
    return {"PhysicalResourceId": physical_id, "Data": custom_resource_data(result)}
