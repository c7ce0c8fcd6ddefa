"""Teardown custom resource: nothing left billing after ``cdk destroy`` (onEvent starts, isComplete polls)."""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune import teardown
from bedrock_finetune.settings import TeardownProperties
from handlers._runtime import client, logger, tracer, typed_errors


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
@typed_errors
def handler(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, object]:
    """onEvent. Delete of the stack: stop jobs, delete throughputs, report committed ones."""
    physical_id = event.get("PhysicalResourceId") or f"{event.logical_resource_id}-teardown"  # stable
    if event.request_type != "Delete":
        return {"PhysicalResourceId": physical_id}
    if not teardown.stack_is_being_deleted(client("cloudformation"), event.stack_id):
        logger.info("resource replaced, stack stays: nothing torn down")
        return {"PhysicalResourceId": physical_id, "Data": {"Skipped": "true"}}
    properties = TeardownProperties.from_properties(event.resource_properties)
    report, deadline = teardown.start_teardown(
        client("bedrock"), client("sns"), properties, stack_id=event.stack_id, now=time.time()
    )
    logger.info("teardown started", extra=report.log_fields())
    return {"PhysicalResourceId": physical_id, "Data": {"Deadline": str(deadline)}}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
@typed_errors
def is_complete(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, object]:
    """isComplete. Complete when nothing deletable of the stack is left; fails naming what is left."""
    data = event.get("Data") or {}
    if event.request_type != "Delete" or data.get("Skipped") == "true":
        return {"IsComplete": True}
    properties = TeardownProperties.from_properties(event.resource_properties)
    complete, report = teardown.continue_teardown(
        client("bedrock"), properties, deadline=data.get("Deadline"), now=time.time()
    )
    logger.info("teardown round", extra={"complete": complete, "summary": report.summary()})
    return {"IsComplete": complete}
