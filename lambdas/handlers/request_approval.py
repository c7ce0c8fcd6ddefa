"""RequestApproval: keep the task token and ask the topic for approval, with the price estimate.

Invoked with ``.waitForTaskToken``: the state waits until someone answers or the request expires."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.approvals import request_approval
from bedrock_finetune.settings import ApprovalSettings
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``serving`` (the plan), ``training``, ``taskToken``, ``executionArn``."""
    request = request_approval(
        client("s3"),
        client("sns"),
        event.run,
        plan=event["serving"],
        training=event.get("training") or {},
        task_token=str(event["taskToken"]),
        execution_arn=event.execution_arn,
        settings=settings(ApprovalSettings),
    )
    logger.info(
        "approval requested", extra={"expiresAt": request["expiresAt"], "messageId": request["messageId"]}
    )
    return {"requested": True}
