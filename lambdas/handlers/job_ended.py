"""JobEnded: wake the runs waiting on a customization job that has ended.

Invoked by two rules: Bedrock's "Model Customization Job State Change" event (terminal statuses), and
the fallback schedule ("Scheduled Event"), because Bedrock delivers its events on a best-effort basis.
Each scheduled tick also reports the training queue's length and slots in use, so the dashboard
charts a quiet queue as 0 rather than as a gap (the queue's own states report them only when a run
asks for a slot)."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bedrock_finetune.job_wait import check_waiting_jobs, job_ended
from bedrock_finetune.metrics import QUEUE_LENGTH, TRAINING_SLOTS_IN_USE
from bedrock_finetune.settings import JobWaitSettings
from bedrock_finetune.training_queue import list_queue, run_slot
from handlers._runtime import client, logger, metrics, settings, tracer, typed_errors

JOB_STATE_CHANGE = "Model Customization Job State Change"


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@typed_errors
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input: the job's state-change event, or the schedule's event. Output: what was woken."""
    config = settings(JobWaitSettings)
    bucket = config.bucket_name
    s3, bedrock, sfn = client("s3"), client("bedrock"), client("stepfunctions")
    slot_of = partial(run_slot, client("dynamodb"), config.queue_table)
    if event.get("detail-type") == JOB_STATE_CHANGE:
        detail = event.get("detail") or {}
        woken = job_ended(
            s3, bedrock, sfn, bucket=bucket, job_name=str(detail.get("jobName")), slot_of=slot_of
        )
        logger.info(
            "job state change",
            extra={"jobArn": detail.get("jobArn"), "jobStatus": detail.get("jobStatus"), "woken": woken},
        )
        return {"woken": woken}
    result = check_waiting_jobs(s3, bedrock, sfn, bucket=bucket, slot_of=slot_of)
    if config.queue_table:
        view = list_queue(client("dynamodb"), config.queue_table)
        result["queue"] = {"inLine": len(view.in_line), "inUse": view.in_use}
        metrics.add_metric(name=QUEUE_LENGTH, unit=MetricUnit.Count, value=len(view.in_line))
        metrics.add_metric(name=TRAINING_SLOTS_IN_USE, unit=MetricUnit.Count, value=view.in_use)
    logger.info("fallback check of the waiting jobs", extra=result)
    return result
