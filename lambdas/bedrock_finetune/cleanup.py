"""Clean up after a run that did not finish: stop its job, delete the throughput it bought.

Safe to run again and again (the failure chain and the ended-execution clean-up both loop on it):
what is already stopped or gone is left alone. What cannot be deleted yet is reported with the exact
command to delete it by hand:

- a throughput that is still ``Creating`` (or ``Updating``): Bedrock answers ``ConflictException``
  until it is InService or Failed, within the hour, so the result asks to be called again (``retry``);
- a throughput with a commitment term: it cannot be deleted before the term ends, and keeps billing.

Only what this execution created is touched: a duplicate execution that reused another execution's
job or throughput (same upload, same deterministic names) leaves them to the execution that made them.

The run's place in the training queue goes too (``slot``): a run that was only waiting leaves the
line at once; a run holding a slot gives it back once its job has ended (Bedrock counts a stopping job
against its quota until it is Stopped), so a job it just stopped keeps the clean-up going one more round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune.bedrock_jobs import classify, find_job, find_throughput
from bedrock_finetune.lineage import TAG_EXECUTION, tag_value
from bedrock_finetune.naming import LineNames, RunNames

_STOPPABLE = frozenset({"InProgress"})
#: Throughput states in which Bedrock refuses deletion for now (ConflictException), but not for long.
_SETTLING = frozenset({"Creating", "Updating"})


class Slot(Protocol):
    """The run's place in the training queue (``training_queue.RunSlot``)."""

    def give_back(self, job_status: str | None) -> tuple[str | None, str | None]:
        """Leave the queue or give the slot back, unless ``job_status`` says the job still runs:
        ``(what was done, what has to wait)``."""
        ...


def delete_command(arn: str, region: str | None = None) -> str:
    """The AWS CLI command that deletes one provisioned throughput."""
    where = f" --region {region}" if region else ""
    return f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {arn}{where}"


def _region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _created_by(bedrock: Any, arn: str) -> str | None:
    """The execution tag of a job, custom model or endpoint (None when it has none or cannot be read)."""
    try:
        tags = bedrock.list_tags_for_resource(resourceARN=arn).get("tags") or []
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        raise classify(exc, "ListTagsForResource") from exc
    except BotoCoreError as exc:
        raise classify(exc, "ListTagsForResource") from exc
    return next((str(t.get("value")) for t in tags if t.get("key") == TAG_EXECUTION), None)


def _not_ours(bedrock: Any, arn: str, execution_arn: str | None) -> str | None:
    """Why ``arn`` must be left alone by ``execution_arn`` (None when it is this execution's own)."""
    if execution_arn is None:
        return None
    creator = _created_by(bedrock, arn)
    if creator is None or creator == tag_value(execution_arn):
        return None
    return f"{arn} was created by execution {creator}, not by this one; it is left to that execution"


def _serves_another_execution(
    bedrock: Any, arn: str, described: Mapping[str, Any], execution_arn: str | None
) -> str | None:
    """Why an endpoint this execution created must still be left alone: it serves, or is being given,
    a model another execution trained (a later version of the line, or a rollback). None otherwise."""
    if execution_arn is None:
        return None
    ours = tag_value(execution_arn)
    models = {
        str(m)
        for m in (
            described.get("modelArn"),
            described.get("desiredModelArn"),
            (described.get("updateDetails") or {}).get("modelArn"),
        )
        if m
    }
    for model in sorted(models):
        creator = _created_by(bedrock, model)
        if creator is not None and creator != ours:
            return (
                f"{arn} serves, or is being given, {model}, which execution {creator} trained; it is "
                "left serving that version"
            )
    return None


def _left_to_another(
    bedrock: Any, arn: str, described: Mapping[str, Any], execution_arn: str | None
) -> str | None:
    """Why a line's endpoint must be left alone: another execution created it, or it serves (or is
    being given) another execution's model. None when this execution may delete it."""
    return _not_ours(bedrock, arn, execution_arn) or _serves_another_execution(
        bedrock, arn, described, execution_arn
    )


def clean_up_run(
    bedrock: Any,
    names: RunNames,
    *,
    line: LineNames | None = None,
    execution_arn: str | None = None,
    previous: Mapping[str, Any] | None = None,
    max_attempts: int = 1,
    min_attempts: int = 1,
    slot: Slot | None = None,
    evaluation_deployment: str | None = None,
) -> dict[str, Any]:
    """Stop the run's job if it is running; delete its no-commitment Provisioned Throughput; give the
    run's training slot back (``slot``) once its job has ended.

    ``evaluation_deployment``: the name of the candidate's temporary deployment (on-demand lines),
    deleted when this execution created it.
    ``line``: the run's model line, whose endpoint (throughput or deployment) is deleted when this
    execution created it (an endpoint an earlier version created keeps serving that version).
    ``execution_arn``: only resources tagged as created by this execution are touched. ``previous``: the
    result of the attempt before (its ``attempt`` number and what it did, which this result keeps);
    ``max_attempts``: how many the caller will make; ``retry`` is true when a throughput is still
    settling, or fewer than ``min_attempts`` were made, and another attempt is allowed.

    Returns ``jobStopped``, ``throughputDeleted``, ``throughputKept`` (a committed ARN),
    ``stillBilling`` (each with ``arn``, ``status``, ``why`` and the ``deleteCommand``), ``settling``,
    ``retry``, ``attempt`` (this one, counted from 1) and a one-line ``summary``.
    """
    previous = previous or {}
    attempt = int(previous.get("attempt") or 0)
    work = _Attempt(
        result={
            "jobStopped": bool(previous.get("jobStopped")),
            "throughputDeleted": bool(previous.get("throughputDeleted")),
            "throughputKept": None,
        }
    )
    job_status = _stop_job(bedrock, names, execution_arn, work)
    if line is not None:
        _clean_throughput(bedrock, line.throughput_name, execution_arn, work)
        _clean_deployment(bedrock, line.deployment_name, execution_arn, work)
    if evaluation_deployment is not None:
        _clean_deployment(bedrock, evaluation_deployment, execution_arn, work)
    result, done, pending, still_billing, settling = (
        work.result,
        work.done,
        work.pending,
        work.still_billing,
        work.settling,
    )

    if slot is not None:
        gave, kept = slot.give_back(job_status)
        done.extend([gave] if gave else [])
        pending.extend([kept] if kept else [])
        settling = settling or bool(kept)

    # What earlier attempts did stays in the record; what is still settling is this attempt's news.
    actions = [*previous.get("actions", []), *done]
    result.update(
        stillBilling=still_billing,
        settling=settling,
        retry=(settling or attempt + 1 < min_attempts) and attempt + 1 < max_attempts,
        attempt=attempt + 1,
        actions=actions,
        summary="; ".join(dict.fromkeys(actions + pending))
        or "nothing to clean up (no running job, no endpoint this run created)",
    )
    return result


@dataclass
class _Attempt:
    """What one clean-up attempt did, could not do yet, and found still billing."""

    result: dict[str, Any]
    done: list[str] = field(default_factory=list)
    #: What this attempt could not do yet (a throughput or deployment still settling).
    pending: list[str] = field(default_factory=list)
    still_billing: list[dict[str, str]] = field(default_factory=list)
    settling: bool = False


def _stop_job(bedrock: Any, names: RunNames, execution_arn: str | None, work: _Attempt) -> str | None:
    """Stop the run's job if it runs and is this execution's; its status after (None when there is no
    job or it is another execution's)."""
    job = find_job(bedrock, names.job_name)
    if job is None:
        return None
    if job.get("status") not in _STOPPABLE:
        return str(job.get("status"))
    foreign = _not_ours(bedrock, job["jobArn"], execution_arn)
    if foreign:
        work.done.append(f"job {foreign}")
        return None
    try:
        bedrock.stop_model_customization_job(jobIdentifier=names.job_name)
    except ClientError as exc:
        # Conflict: it is already stopping or finished; nothing left to do.
        if _code(exc) != "ConflictException":
            raise classify(exc, "StopModelCustomizationJob") from exc
    except BotoCoreError as exc:
        raise classify(exc, "StopModelCustomizationJob") from exc
    work.result["jobStopped"] = True
    work.done.append(f"stopped customization job {job['jobArn']}")
    return "Stopping"


def _clean_throughput(bedrock: Any, name: str, execution_arn: str | None, work: _Attempt) -> None:
    pt = find_throughput(bedrock, name)
    if pt is None:
        return
    arn, status = str(pt["provisionedModelArn"]), str(pt.get("status", ""))
    foreign = _left_to_another(bedrock, arn, pt, execution_arn)
    if foreign:
        work.done.append(f"provisioned throughput {foreign}")
    elif pt.get("commitmentDuration"):
        work.result["throughputKept"] = arn
        until = pt.get("commitmentExpirationTime", "its term ends")
        why = f"it has a {pt['commitmentDuration']} commitment and cannot be deleted before {until}"
        work.still_billing.append(_billing(arn, status, why, region=_region(arn), after=str(until)))
        work.done.append(f"provisioned throughput {arn} {why}; it keeps billing")
    else:
        outcome = _delete_throughput(bedrock, arn, status)
        if outcome is None:
            work.result["throughputDeleted"] = True
            work.done.append(f"deleted provisioned throughput {arn}")
        else:
            work.settling = True
            work.still_billing.append(
                _billing(arn, outcome, "Bedrock cannot delete it while it is " + outcome)
            )
            work.pending.append(f"provisioned throughput {arn} is {outcome} and cannot be deleted yet")


def _clean_deployment(bedrock: Any, name: str, execution_arn: str | None, work: _Attempt) -> None:
    deployment = _find_deployment(bedrock, name)
    if deployment is None:
        return
    arn, status = str(deployment["customModelDeploymentArn"]), str(deployment.get("status", ""))
    foreign = _left_to_another(bedrock, arn, deployment, execution_arn)
    if foreign:
        work.done.append(f"custom model deployment {foreign}")
    elif status == "Creating":
        work.settling = True
        why = "Bedrock cannot delete a deployment while it is Creating"
        work.still_billing.append(
            _billing(arn, status, why, command=deployment_delete_command(arn, _region(arn)))
        )
        work.pending.append(f"custom model deployment {arn} is Creating and cannot be deleted yet")
    else:
        _delete_deployment(bedrock, arn)
        work.result["deploymentDeleted"] = True
        work.done.append(f"deleted custom model deployment {arn}")


def deployment_delete_command(arn: str, region: str | None = None) -> str:
    """The AWS CLI command that deletes one custom model deployment."""
    where = f" --region {region}" if region else ""
    return f"aws bedrock delete-custom-model-deployment --custom-model-deployment-identifier {arn}{where}"


def _find_deployment(bedrock: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=name))
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        raise classify(exc, "GetCustomModelDeployment") from exc
    except BotoCoreError as exc:
        raise classify(exc, "GetCustomModelDeployment") from exc


def _delete_deployment(bedrock: Any, arn: str) -> None:
    try:
        bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise classify(exc, "DeleteCustomModelDeployment") from exc
    except BotoCoreError as exc:
        raise classify(exc, "DeleteCustomModelDeployment") from exc


def _delete_throughput(bedrock: Any, arn: str, status: str) -> str | None:
    """Delete; None when gone, else the status that keeps Bedrock from deleting it for now."""
    if status in _SETTLING:
        return status
    try:
        bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)
    except ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return None
        if _code(exc) == "ConflictException":
            # Creating or Updating under us: Bedrock refuses until it settles.
            return status if status in _SETTLING else "busy"
        raise classify(exc, "DeleteProvisionedModelThroughput") from exc
    except BotoCoreError as exc:
        raise classify(exc, "DeleteProvisionedModelThroughput") from exc
    return None


def _billing(
    arn: str,
    status: str,
    why: str,
    *,
    region: str | None = None,
    after: str | None = None,
    command: str | None = None,
) -> dict[str, str]:
    """A resource still billing, with the command that deletes it (``command``; by default a
    throughput's), to run ``after`` a date when it cannot be deleted before."""
    command = command or delete_command(arn, region or _region(arn))
    return {
        "arn": arn,
        "status": status,
        "why": why,
        "deleteCommand": f"{command} (after {after})" if after else command,
    }


def still_billing_lines(cleanup: Mapping[str, Any]) -> list[str]:
    """One line per resource still billing, with the command that deletes it."""
    return [
        f"{item['arn']} ({item['status']}): {item['why']}. Delete it with: {item['deleteCommand']}"
        for item in cleanup.get("stillBilling") or []
    ]
