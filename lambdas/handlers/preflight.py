"""Preflight custom resource (Create, Update): fail the deploy early when Bedrock can't serve the model.

Invoked by the CDK custom-resource Provider framework. Raising fails the deployment with the error
message as the status reason; warnings come back as the ``Warnings`` attribute (a stack output) and
are published to the notification topic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.catalog import ModelSpec
from bedrock_finetune.preflight import PreflightSettings, run_preflight, warnings_message
from handlers._runtime import client, logger, tracer

#: Attribute value when there is nothing to warn about (a stack output cannot be empty).
NO_WARNINGS = "none"
#: Custom resource responses are limited to 4 KB; warnings are short, but bound them anyway.
_MAX_WARNINGS_CHARS = 2000


def settings_from(properties: dict[str, Any]) -> PreflightSettings:
    """The resource properties (all strings, as CloudFormation passes them) as typed settings."""
    model_id = properties["BaseModelId"]
    return PreflightSettings(
        base_model_id=model_id,
        region=properties["Region"],
        model=ModelSpec.from_dict(model_id, json.loads(properties["ModelSpec"])),
        hyperparameters=json.loads(properties.get("Hyperparameters") or "{}"),
        model_units=int(properties["ModelUnits"]),
        commitment=properties.get("Commitment") or None,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
def handler(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, Any]:
    """Create/Update: run the checks. Delete: nothing to undo."""
    physical_id = event.get("PhysicalResourceId") or f"{event.logical_resource_id}-preflight"
    if event.request_type == "Delete":
        return {"PhysicalResourceId": physical_id}
    properties = event.resource_properties
    settings = settings_from(properties)
    result = run_preflight(client("bedrock"), client("service-quotas"), settings, now=datetime.now(UTC))
    logger.info(
        "preflight passed",
        extra={"model": result.model_arn, "lifecycle": result.lifecycle_status, "quota": result.quota},
    )
    if result.warnings:
        logger.warning("preflight warnings", extra={"warnings": list(result.warnings)})
        subject, body = warnings_message(result, settings, properties.get("StackName", event.stack_id))
        client("sns").publish(TopicArn=properties["TopicArn"], Subject=subject, Message=body)
    warnings = " | ".join(result.warnings)[:_MAX_WARNINGS_CHARS] or NO_WARNINGS
    return {
        "PhysicalResourceId": physical_id,
        "Data": {"Warnings": warnings, "ModelLifecycle": result.lifecycle_status, "Quota": result.quota},
    }
