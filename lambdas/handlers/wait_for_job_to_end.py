"""WaitForJobToEnd: keep the run's task token beside its job; wake at once if the job has ended.

Invoked with ``.waitForTaskToken``: the state waits until the job's end wakes it (JobEnded) or its
timeout (``max_job_hours``) passes."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.job_wait import wait_for_job_to_end
from bedrock_finetune.settings import JobWaitSettings
from bedrock_finetune.training_queue import run_slot
from handlers._events import TaskEvent
from handlers._runtime import CORRELATION_ID_PATH, client, logger, metrics, settings, tracer, typed_errors


@logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=TaskEvent)
@typed_errors
def handler(event: TaskEvent, context: LambdaContext) -> dict[str, Any]:
    """Input: ``run``, ``job`` (the Start customization job result), ``taskToken``, ``executionArn``,
    ``executionName``."""
    config = settings(JobWaitSettings)
    result = wait_for_job_to_end(
        client("s3"),
        client("bedrock"),
        client("stepfunctions"),
        bucket=config.bucket_name,
        run=event.run.run,
        job=event.job,
        task_token=str(event["taskToken"]),
        execution_arn=event.execution_arn,
        execution_name=str(event["executionName"]),
        slot_of=partial(run_slot, client("dynamodb"), config.queue_table),
    )
    logger.info("waiting for the job to end", extra={"jobArn": event.job.get("jobArn"), **result})
    return result
