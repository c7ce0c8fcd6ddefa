"""Teardown custom resource (Delete): leave nothing billing after ``cdk destroy``.

Two entry points for the CDK custom-resource Provider framework: :func:`handler` (onEvent) starts
the teardown, :func:`is_complete` is polled until everything deletable is gone. Create and Update
do nothing. A Delete that is not part of a stack deletion (the resource replaced during an update)
does nothing either.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudFormationCustomResourceEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune import teardown
from handlers._runtime import client, logger, tracer


def _physical_id(event: CloudFormationCustomResourceEvent) -> str:
    # Stable across updates, so CloudFormation never replaces (and so never deletes) this resource.
    return event.get("PhysicalResourceId") or f"{event.logical_resource_id}-teardown"


def _stack_name(stack_id: str) -> str:
    parts = stack_id.split("/")
    return parts[1] if len(parts) > 2 else stack_id


def _with_instructions(exc: Exception, stack_tag: str, region: str) -> str:
    return f"{exc} {teardown.hand_cleanup_instructions(stack_tag, region)}"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
def handler(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, Any]:
    """onEvent. Delete of the stack: stop jobs, delete throughputs, report committed ones."""
    physical_id = _physical_id(event)
    if event.request_type != "Delete":
        return {"PhysicalResourceId": physical_id}
    if not teardown.stack_is_being_deleted(client("cloudformation"), event.stack_id):
        logger.info("resource replaced, stack stays: nothing torn down")
        return {"PhysicalResourceId": physical_id, "Data": {"Skipped": "true"}}
    properties = event.resource_properties
    stack_tag, region = properties["StackTag"], properties["Region"]
    try:
        report = teardown.begin(client("bedrock"), stack_tag)
    except teardown.TeardownFailed as exc:
        raise teardown.TeardownFailed(_with_instructions(exc, stack_tag, region)) from exc
    logger.info(
        "teardown started",
        extra={
            "summary": report.summary(),
            "jobsStopped": report.jobs_stopped,
            "throughputsDeleting": report.throughputs_deleting,
        },
    )
    if report.throughputs_committed:
        logger.warning(
            "provisioned throughputs with a commitment term are kept and keep billing",
            extra={"committed": [pt.describe_commitment() for pt in report.throughputs_committed]},
        )
    if report.anything:
        subject, body = teardown.report_message(report, _stack_name(event.stack_id), region)
        client("sns").publish(TopicArn=properties["TopicArn"], Subject=subject, Message=body)
    deadline = int(time.time()) + int(properties["WaitSeconds"])
    return {"PhysicalResourceId": physical_id, "Data": {"Deadline": str(deadline)}}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=CloudFormationCustomResourceEvent)
def is_complete(event: CloudFormationCustomResourceEvent, context: LambdaContext) -> dict[str, Any]:
    """isComplete. Complete when no deletable throughput of the stack is left (and custom models
    are deleted, when configured); fails with what to delete by hand when time runs out."""
    data = event.get("Data") or {}
    if event.request_type != "Delete" or data.get("Skipped") == "true":
        return {"IsComplete": True}
    properties = event.resource_properties
    stack_tag, region = properties["StackTag"], properties["Region"]
    delete_models = str(properties.get("DeleteCustomModels", "false")).lower() == "true"
    try:
        complete, report = teardown.advance(client("bedrock"), stack_tag, delete_custom_models=delete_models)
    except teardown.TeardownFailed as exc:
        raise teardown.TeardownFailed(_with_instructions(exc, stack_tag, region)) from exc
    logger.info("teardown round", extra={"complete": complete, "summary": report.summary()})
    if complete:
        return {"IsComplete": True}
    deadline = data.get("Deadline")
    if deadline is not None and time.time() >= int(deadline):
        left = report.throughputs_deleting + report.custom_models_busy
        raise teardown.TeardownFailed(
            "Timed out waiting for Bedrock to delete: "
            + ", ".join(left)
            + ". Delete them by hand (aws bedrock delete-provisioned-model-throughput "
            "--provisioned-model-id <arn>; aws bedrock delete-custom-model --model-identifier <arn>), "
            "then retry the stack deletion."
        )
    return {"IsComplete": False}
