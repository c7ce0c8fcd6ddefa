"""Clean up after a run that did not finish: stop its job, delete throughput it bought.

Idempotent and safe to run twice (from the state machine's failure path and from the
execution-ended rule): what is already stopped or gone is left alone. A throughput with a
commitment term cannot be deleted before the term ends; it is kept and reported.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune.bedrock_jobs import classify, find_job, find_throughput
from bedrock_finetune.naming import RunNames

_STOPPABLE = frozenset({"InProgress"})


def clean_up_run(bedrock: Any, names: RunNames) -> dict[str, Any]:
    """Stop the run's job if it is running; delete its no-commitment Provisioned Throughput.

    Returns what was done, with a one-line ``summary`` for the notification.
    """
    done: list[str] = []
    result: dict[str, Any] = {"jobStopped": False, "throughputDeleted": False, "throughputKept": None}

    job = find_job(bedrock, names.job_name)
    if job is not None and job.get("status") in _STOPPABLE:
        try:
            bedrock.stop_model_customization_job(jobIdentifier=names.job_name)
        except ClientError as exc:
            # Conflict: it is already stopping or finished; nothing left to do.
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise classify(exc, "StopModelCustomizationJob") from exc
        except BotoCoreError as exc:
            raise classify(exc, "StopModelCustomizationJob") from exc
        result["jobStopped"] = True
        done.append(f"stopped customization job {job['jobArn']}")

    pt = find_throughput(bedrock, names.provisioned_model_name)
    if pt is not None:
        arn = pt["provisionedModelArn"]
        if pt.get("commitmentDuration"):
            result["throughputKept"] = arn
            done.append(
                f"provisioned throughput {arn} has a {pt['commitmentDuration']} commitment and cannot be "
                f"deleted before {pt.get('commitmentExpirationTime', 'its term ends')}; it keeps billing"
            )
        else:
            try:
                bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise classify(exc, "DeleteProvisionedModelThroughput") from exc
            except BotoCoreError as exc:
                raise classify(exc, "DeleteProvisionedModelThroughput") from exc
            result["throughputDeleted"] = True
            done.append(f"deleted provisioned throughput {arn}")

    result["summary"] = "; ".join(done) if done else "nothing to clean up (no running job, no throughput)"
    return result
