"""Serving a model line at one stable endpoint: plan, create or update, follow, and the price of it.

A run folder's name is its *line*. A line has at most one endpoint, whose ARN never changes:

- ``provisioned``: a Provisioned Throughput named after the line (billed per model unit per hour,
  https://docs.aws.amazon.com/bedrock/latest/userguide/prov-throughput.html);
- ``on_demand``: a custom model deployment named after the line (billed per token, nothing while
  idle, https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html).

The first version that passes its gates creates the endpoint; a later version replaces the model
behind it (``UpdateProvisionedModelThroughput`` with ``desiredModelId``, or
``UpdateCustomModelDeployment``), so no second throughput is ever bought for a line. Every call is
idempotent: the endpoint is found by its deterministic name first, and a create carries a token
derived from the line and the run's upload.

Deployments per account have a quota too. Under ``deployment_quota_policy = wait`` a
``CreateCustomModelDeployment`` refused for it waits with back-off and a notice
(:func:`wait_for_deployment_quota`), up to ``max_deployment_wait_hours``. Model units for a Provisioned
Throughput must be requested from AWS first; they do not free up by waiting, so that refusal fails at
once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune import pricing
from bedrock_finetune.bedrock_jobs import _call, _find, classify, find_throughput, to_bedrock_tags
from bedrock_finetune.endpoint_wait import wait_seconds
from bedrock_finetune.errors import BedrockQuotaExceeded, BedrockTransientError, QuotaWaitExpired
from bedrock_finetune.lineage import run_tags
from bedrock_finetune.naming import serving_token
from bedrock_finetune.notifications import Notice, error_message, publish
from bedrock_finetune.quota_wait import wait_or_fail
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import ServeModelSettings, ServingSettings

PROVISIONED = "provisioned"
ON_DEMAND = "on_demand"
KIND = {PROVISIONED: "provisioned_throughput", ON_DEMAND: "custom_model_deployment"}

#: Statuses in which an endpoint cannot take a new model yet (Bedrock answers ConflictException).
_BUSY = frozenset({"Creating", "Updating"})


class EndpointBusy(BedrockTransientError):
    """The line's endpoint is being created or updated (by another version): retry after a while."""


def find_deployment(bedrock: Any, identifier: str) -> dict[str, Any] | None:
    """GetCustomModelDeployment, or None when there is no such deployment."""
    return _find(
        "GetCustomModelDeployment",
        bedrock.get_custom_model_deployment,
        customModelDeploymentIdentifier=identifier,
    )


def find_endpoint(bedrock: Any, mode: str, run: RunRef) -> dict[str, Any] | None:
    """The line's endpoint as Bedrock describes it, or None when the line has none yet."""
    names = run.line
    if mode == PROVISIONED:
        return find_throughput(bedrock, names.throughput_name)
    return find_deployment(bedrock, names.deployment_name)


def _served_model(mode: str, endpoint: Mapping[str, Any]) -> str:
    """The model an endpoint serves, or is being switched to."""
    if mode == PROVISIONED:
        return str(endpoint.get("desiredModelArn") or endpoint.get("modelArn") or "")
    return str(endpoint.get("modelArn") or "")


def _endpoint_arn(mode: str, endpoint: Mapping[str, Any]) -> str:
    key = "provisionedModelArn" if mode == PROVISIONED else "customModelDeploymentArn"
    return str(endpoint[key])


def estimate(settings: ServingSettings, mode: str) -> dict[str, Any]:
    """What serving costs, labelled as an estimate with the price table's date."""
    prices = pricing.prices_for(settings.base_model_id, settings.prices)
    if mode == PROVISIONED:
        hourly = pricing.throughput_estimate(prices, settings.model_units, settings.commitment)
        return {
            "what": f"Provisioned Throughput, {settings.model_units} model unit(s), "
            f"{settings.commitment or 'no commitment'}",
            "perHour": hourly["per_hour"].to_dict(),
            "perMonth": hourly["per_month"].to_dict(),
            "storagePerMonth": pricing.storage_estimate(prices).to_dict(),
        }
    per_1k = pricing.on_demand_estimate(prices, 1000, 1000)
    return {
        "what": "on-demand custom model deployment: billed per token, nothing while idle",
        "per1kInputAndOutputTokens": per_1k.to_dict(),
        "storagePerMonth": pricing.storage_estimate(prices).to_dict(),
    }


def plan_serving(
    bedrock: Any, run: RunRef, job: Mapping[str, Any], settings: ServingSettings, now: datetime | None = None
) -> dict[str, Any]:
    """The Plan serving task: what serving this version means, whether a person must approve it,
    and what it costs.

    Returns ``mode``, ``line``, ``endpointName``, ``endpointArn`` (None when the line has none yet),
    ``action`` (``create``, ``update`` or ``none`` when the endpoint already serves this model),
    ``modelArn``, ``previousModelArn``, ``approvalNeeded``, ``estimate`` and ``deadline`` (when the
    endpoint must be ready, ISO time).
    """
    mode = settings.mode
    model_arn = str(job["outputModelArn"])
    names = run.line
    name = names.throughput_name if mode == PROVISIONED else names.deployment_name
    endpoint = find_endpoint(bedrock, mode, run)
    if endpoint is None:
        action, arn, previous = "create", None, None
    else:
        arn = _endpoint_arn(mode, endpoint)
        previous = _served_model(mode, endpoint)
        action = "none" if previous == model_arn else "update"
    # Buying (creating) a throughput is what costs money by the hour; swapping the model behind one
    # the line already has changes nothing on the bill.
    approval_needed = settings.approval == "always" and action != "none"
    if settings.approval == "provisioned":
        approval_needed = mode == PROVISIONED and action == "create"
    started = now or datetime.now(UTC)
    return {
        "mode": mode,
        "kind": KIND[mode],
        "line": names.line,
        "endpointName": name,
        "endpointArn": arn,
        "action": action,
        "modelArn": model_arn,
        "previousModelArn": previous if previous != model_arn else None,
        "approvalNeeded": approval_needed,
        "estimate": estimate(settings, mode),
        "deadline": (started + timedelta(hours=settings.endpoint_wait_hours)).isoformat(),
    }


def serve_model(
    bedrock: Any,
    run: RunRef,
    plan: Mapping[str, Any],
    execution_arn: str,
    settings: ServingSettings,
) -> dict[str, Any]:
    """The Serve model task: create the line's endpoint for the model, or put the model behind it.

    Returns the plan's ``mode``, ``kind``, ``line``, ``endpointName`` and ``modelArn`` with the
    ``endpointArn`` and what was done (``created``, ``updated``, or ``already`` when a previous
    attempt did it).
    """
    mode = str(plan["mode"])
    model_arn = str(plan["modelArn"])
    name = str(plan["endpointName"])
    endpoint = find_endpoint(bedrock, mode, run)
    tags = run_tags(run, execution_arn, settings)
    result = {k: plan[k] for k in ("mode", "kind", "line", "endpointName", "modelArn", "deadline")}
    # The first wait of the endpoint's loop (Wait for endpoint reads it); Get endpoint status sets the next.
    result["waitSeconds"] = wait_seconds(0, settings.endpoint_poll_cap_seconds)
    if endpoint is None:
        token = serving_token(name, run.identity)
        arn = _create(
            bedrock, mode=mode, name=name, model_arn=model_arn, token=token, tags=tags, settings=settings
        )
        return {**result, "endpointArn": arn, "done": "created", "previousModelArn": None}
    arn = _endpoint_arn(mode, endpoint)
    served = _served_model(mode, endpoint)
    if served == model_arn:
        return {
            **result,
            "endpointArn": arn,
            "done": "already",
            "previousModelArn": plan.get("previousModelArn"),
        }
    status = str(endpoint.get("status", ""))
    update_status = str((endpoint.get("updateDetails") or {}).get("updateStatus", ""))
    if status in _BUSY or update_status == "Updating":
        raise EndpointBusy(
            f"{arn} is {status if status in _BUSY else 'Updating'}; the model can be replaced once it is "
            "ready again (the state machine retries)"
        )
    _update(bedrock, mode, arn, model_arn)
    return {**result, "endpointArn": arn, "done": "updated", "previousModelArn": served}


def _create(
    bedrock: Any,
    *,
    mode: str,
    name: str,
    model_arn: str,
    token: str,
    tags: Mapping[str, str],
    settings: ServingSettings,
) -> str:
    if mode == PROVISIONED:
        params: dict[str, Any] = {
            "modelUnits": settings.model_units,
            "provisionedModelName": name,
            "modelId": model_arn,
            "clientRequestToken": token,
            "tags": to_bedrock_tags(tags),
        }
        if settings.commitment:
            params["commitmentDuration"] = settings.commitment
        action, call, key = (
            "CreateProvisionedModelThroughput",
            bedrock.create_provisioned_model_throughput,
            "provisionedModelArn",
        )
    else:
        params = {
            "modelDeploymentName": name,
            "modelArn": model_arn,
            "description": f"Model line {name}: served by the fine-tuning pipeline",
            "clientRequestToken": token,
            "tags": to_bedrock_tags(tags),
        }
        action, call, key = (
            "CreateCustomModelDeployment",
            bedrock.create_custom_model_deployment,
            "customModelDeploymentArn",
        )
    try:
        return str(call(**params)[key])
    except ClientError as exc:
        # A concurrent attempt (a duplicate event) may have created it between lookup and create.
        raced = find_throughput(bedrock, name) if mode == PROVISIONED else find_deployment(bedrock, name)
        if raced is not None:
            return _endpoint_arn(mode, raced)
        raise classify(exc, action) from exc
    except BotoCoreError as exc:
        raise classify(exc, action) from exc


def _update(bedrock: Any, mode: str, arn: str, model_arn: str) -> None:
    if mode == PROVISIONED:
        _call(
            "UpdateProvisionedModelThroughput",
            bedrock.update_provisioned_model_throughput,
            provisionedModelId=arn,
            desiredModelId=model_arn,
        )
    else:
        _call(
            "UpdateCustomModelDeployment",
            bedrock.update_custom_model_deployment,
            customModelDeploymentIdentifier=arn,
            modelArn=model_arn,
        )


def endpoint_status(
    bedrock: Any, endpoint: Mapping[str, Any], *, poll_cap_seconds: int, now: datetime | None = None
) -> dict[str, Any]:
    """The Get endpoint status task: ``state`` is ``ready`` (serving the model), ``failed``,
    ``superseded`` (a third model was asked for since) or ``waiting``, with Bedrock's ``status`` and
    ``failureMessage``. An endpoint still not ready at its ``deadline`` is ``failed``, so the waiting
    loop ends by itself. ``polls`` counts the looks so far and ``waitSeconds`` is the wait before the
    next (:mod:`bedrock_finetune.endpoint_wait`)."""
    mode = str(endpoint["mode"])
    arn = str(endpoint["endpointArn"])
    model_arn = str(endpoint["modelArn"])
    if mode == PROVISIONED:
        described = _call(
            "GetProvisionedModelThroughput", bedrock.get_provisioned_model_throughput, provisionedModelId=arn
        )
        status = str(described.get("status", "Creating"))
        serving = str(described.get("modelArn", ""))
        ready = status == "InService" and serving == model_arn
        failed = status == "Failed"
        requested = str(described.get("desiredModelArn") or serving)
    else:
        described = _call(
            "GetCustomModelDeployment",
            bedrock.get_custom_model_deployment,
            customModelDeploymentIdentifier=arn,
        )
        status = str(described.get("status", "Creating"))
        update = str((described.get("updateDetails") or {}).get("updateStatus", ""))
        serving = str(described.get("modelArn", ""))
        ready = status == "Active" and update in ("", "UpdateCompleted") and serving == model_arn
        failed = status == "Failed" or update == "UpdateFailed"
        requested = str((described.get("updateDetails") or {}).get("modelArn") or serving)
        if update:
            status = f"{status} ({update})"
    message = str(described.get("failureMessage", ""))
    state = "ready" if ready else "failed" if failed else "waiting"
    if state == "waiting" and requested and requested not in (model_arn, endpoint.get("previousModelArn")):
        # Someone asked for a third model since this run's request (a later version of the line, or a
        # rollback): this run's model will not be served, and its wait must not end in a clean-up.
        state = "superseded"
        message = (
            f"{arn} is now being given {requested}, asked for after this run's request (a later version "
            "of the line, or a rollback); this version is kept, not served"
        )
    deadline = endpoint.get("deadline")
    if (
        state == "waiting"
        and deadline
        and (now or datetime.now(UTC)) >= datetime.fromisoformat(str(deadline))
    ):
        state = "failed"
        message = (
            f"{arn} was still {status} at {deadline} (endpoint_wait_hours after serving began); the "
            "run stops waiting. See the Bedrock console or `aws bedrock` for why."
        )
    polls = int(endpoint.get("polls") or 0) + 1
    return {
        **endpoint,
        "status": status,
        "state": state,
        "failureMessage": message,
        "polls": polls,
        "waitSeconds": wait_seconds(polls, poll_cap_seconds),
    }


# ---- the deployment quota: wait with back-off, or fail ----


def wait_for_deployment_quota(
    sns: Any,
    run: RunRef,
    *,
    plan: Mapping[str, Any],
    quota: Mapping[str, Any],
    execution_arn: str,
    settings: ServeModelSettings,
) -> dict[str, Any]:
    """After "Serve model" met a quota (``quota["refusal"]``, the Catch's error and cause, with the previous
    round's answer around it): the next wait (``waitSeconds`` for the Wait state, ``waitedSeconds``,
    ``attempt``, ``firstWait``, ``error``), the first refusal told in a notice.

    Only an on-demand deployment waits (``deployment_quota_policy = wait``): deployments free up when
    other lines' are deleted. Raises :class:`QuotaWaitExpired` after ``max_deployment_wait_hours`` (nothing
    is bought), and :class:`BedrockQuotaExceeded` at once under ``fail`` or for a Provisioned Throughput
    (its model units must be requested from AWS first; they do not free by themselves)."""
    refusal = quota.get("refusal") or {}
    said = error_message(str(refusal.get("Cause") or "")) or "a quota refused the deployment"
    if plan.get("mode") != ON_DEMAND:
        raise BedrockQuotaExceeded(said)
    what = f"The custom model deployment of line {run.line.line} ({plan.get('endpointName')})"
    try:
        decided = wait_or_fail(settings.as_policy(), previous=quota, error=said, what=what)
    except QuotaWaitExpired as exc:
        raise QuotaWaitExpired(
            f"{exc} (max_deployment_wait_hours). The custom model is kept: {plan.get('modelArn')}. Ask for "
            "a higher quota of custom model deployments (Service Quotas, Amazon Bedrock), delete a "
            "deployment you no longer use, or raise max_deployment_wait_hours; then upload train.jsonl again."
        ) from exc
    if decided["firstWait"]:
        notice = deployment_quota_notice(
            run,
            deployment=f"the line's deployment ({plan.get('endpointName')})",
            model_arn=plan.get("modelArn"),
            said=said,
            state="Waiting for a deployment quota",
            max_wait_seconds=settings.max_wait_seconds,
            execution_arn=execution_arn,
        )
        publish(sns, settings.topic_arn, notice, "waiting", run.run)
    return decided


def deployment_quota_notice(
    run: RunRef,
    *,
    deployment: str,
    model_arn: object,
    said: str,
    state: str,
    max_wait_seconds: int,
    execution_arn: str,
) -> Notice:
    """The notice of a run whose ``deployment`` (what it is, and its name) Bedrock refused for a quota:
    it waits in ``state``, and until when."""
    body = "\n".join(
        [
            f"Run: {run.run}",
            f"Status: trained; Bedrock refused to create {deployment} for a quota. The run waits and "
            "tries again (after 2, 4, 8 minutes, then at a steady interval).",
            f"Bedrock said: {said}",
            f"Model: {model_arn} (kept whatever happens)",
            f"Gives up: after {max_wait_seconds / 3600:g} h of waiting (max_deployment_wait_hours) the run "
            "fails with a notice; nothing is bought for it.",
            f"Follow it: finetune status, or the execution's state '{state}'.",
            f"Execution: {execution_arn}",
        ]
    )
    return Notice(
        subject=f"[fine-tuning] {run.run}: Bedrock's deployment quota is full, waiting"[:100],
        body=body,
        error="",
        cause="",
    )
