"""Clean up after an execution that timed out or was aborted (EventBridge rule target).

A Fail state inside the state machine runs its own clean-up first; aborted and timed-out
executions cannot, so this handler stops the job, deletes throughput and notifies.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.cleanup import clean_up_run
from bedrock_finetune.layout import InvalidRunKey, RunLocation
from bedrock_finetune.naming import identity_from_run, names_for
from bedrock_finetune.notifications import Links, failure_notice, publish, run_record, write_run_record
from handlers._runtime import client, env, logger, metrics, tracer

_ERRORS = {"TIMED_OUT": "ExecutionTimedOut", "ABORTED": "ExecutionAborted"}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: a "Step Functions Execution Status Change" event."""
    detail = event["detail"]
    execution_arn, status = detail["executionArn"], detail["status"]
    logger.append_keys(correlation_id=detail.get("name"))
    execution_input = json.loads(detail.get("input") or "null")
    if not execution_input:
        # Over 248 KB EventBridge drops the input; Standard workflows keep it in DescribeExecution.
        execution_input = json.loads(
            client("stepfunctions").describe_execution(executionArn=execution_arn)["input"]
        )
    try:
        location = RunLocation.from_train_key(execution_input["bucket"], execution_input["key"])
    except (InvalidRunKey, KeyError) as exc:
        logger.warning("execution input names no run; nothing to clean up", extra={"error": str(exc)})
        return {"summary": "no run in the execution input"}
    run = {**execution_input, "run": location.run}
    result = clean_up_run(client("bedrock"), names_for(location.run, identity_from_run(run)))
    state = {
        "run": run,
        "failure": {
            "step": "Execution",
            "error": _ERRORS.get(status, status),
            "cause": f"The execution ended with status {status} before the run finished.",
        },
        "cleanup": result,
    }
    links = Links(region=env("AWS_REGION"), bucket=env("BUCKET_NAME"), log_group=env("PIPELINE_LOG_GROUP"))
    notice = failure_notice(state, links, execution_arn)
    record = run_record(state, "failed", execution_arn, notice)
    write_run_record(client("s3"), location.bucket, location.run_record_key, record)
    publish(client("sns"), env("TOPIC_ARN"), notice, "failed", location.run)
    logger.info("clean-up after ended execution", extra={"status": status, **result})
    return result
