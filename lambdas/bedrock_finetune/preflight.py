"""Deploy-time preflight: can Bedrock fine-tune and serve the configured base model here?

Run by the preflight custom resource on stack Create and Update. Hard problems (model not offered,
not fine-tunable, past end of life, bad hyperparameter defaults) raise :class:`PreflightFailed`,
which fails the deployment with the message. Soft problems (Legacy model, no model units for
Provisioned Throughput, quota not readable) come back as warnings: the deployment goes on, and the
warnings reach a stack output and the notification topic.

Plain functions over boto3 clients (``bedrock``, ``service-quotas``) passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune.catalog import (
    BUILTIN_MODELS,
    NOVA_MICRO,
    NOVA_PRO,
    RECOMMENDED_MODEL,
    ModelSpec,
    check_hyperparameters,
)
from bedrock_finetune.notifications import publish_message
from bedrock_finetune.settings import PreflightProperties

#: The Service Quotas service code of Amazon Bedrock.
QUOTA_SERVICE_CODE = "bedrock"
#: The quota that bounds no-commitment Provisioned Throughput for custom models (looked up by name,
#: because quota codes are not documented as stable).
NO_COMMITMENT_QUOTA_NAME = "Model units no-commitment Provisioned Throughputs across custom models"
#: Commitment quotas are per base model: "Model units per provisioned model for <model name>".
COMMITMENT_QUOTA_PREFIX = "Model units per provisioned model for "

#: AWS documents no Service Quotas code for concurrent model customization jobs (the Bedrock quotas
#: page, https://docs.aws.amazon.com/general/latest/gr/bedrock.html#limits_bedrock, lists per-model
#: record and token quotas). The preflight looks for an Amazon Bedrock quota whose name speaks of
#: concurrent customization (or fine-tuning) jobs, applied value first, then the AWS default; when it
#: finds none, the configured ``max_concurrent_jobs`` decides, or this default.
DEFAULT_MAX_CONCURRENT_JOBS = 2
#: The custom resource's attribute that carries the training queue's limit.
JOB_LIMIT_ATTRIBUTE = "MaxConcurrentJobs"
_JOB_WORDS = ("customization", "fine-tuning", "fine tuning", "finetuning")

#: Lifecycle statuses that mean the model can no longer be used. The botocore model knows only
#: ACTIVE and LEGACY today; these guard against a status AWS may add for retired models.
_END_OF_LIFE_STATUSES = frozenset({"END_OF_LIFE", "EOL", "RETIRED", "DEPRECATED"})
_QUOTA_UNREADABLE = frozenset(
    {"AccessDeniedException", "NoSuchResourceException", "IllegalArgumentException"}
)


class PreflightFailed(Exception):
    """Bedrock cannot fine-tune or serve the configured model here; the message says why and what to do."""


@dataclass(frozen=True)
class PreflightSettings:
    """What the stack is configured to do, as the custom resource passes it."""

    base_model_id: str
    region: str
    model: ModelSpec
    hyperparameters: Mapping[str, object]
    model_units: int
    commitment: str | None
    #: ``max_concurrent_jobs`` as configured (None: the account's quota decides).
    max_concurrent_jobs: int | None = None


@dataclass(frozen=True)
class PreflightResult:
    """What preflight found. ``warnings`` is empty when all is well."""

    model_arn: str
    model_name: str
    lifecycle_status: str
    quota: str
    warnings: tuple[str, ...] = field(default_factory=tuple)
    #: How many customization jobs the training queue lets run at once, and where that comes from.
    max_concurrent_jobs: int = DEFAULT_MAX_CONCURRENT_JOBS
    jobs_quota: str = "not checked"


class QuotaLists:
    """Amazon Bedrock's quotas, each list read once (applied values, then AWS defaults) and shared
    by the checks; an error reading a list is raised again to every check that needs it."""

    def __init__(self, quotas: Any) -> None:
        self._quotas = quotas
        self._lists: dict[str, list[dict[str, Any]] | Exception] = {}

    def _list(self, operation: str) -> list[dict[str, Any]]:
        if operation not in self._lists:
            try:
                self._lists[operation] = list(_pages(self._quotas, operation))
            except (ClientError, BotoCoreError) as exc:
                self._lists[operation] = exc
        found = self._lists[operation]
        if isinstance(found, Exception):
            raise found
        return found

    def find_all(self, matches: Any) -> list[dict[str, Any]]:
        """The quotas whose name ``matches``: among the applied values, else among the AWS defaults."""
        for operation in ("list_service_quotas", "list_aws_default_service_quotas"):
            found = [q for q in self._list(operation) if matches(str(q.get("QuotaName", "")))]
            if found:
                return found
        return []


def model_change(current: ModelSpec) -> str:
    """The one-line configuration change to a model that Bedrock fine-tunes, and where."""
    target = BUILTIN_MODELS[RECOMMENDED_MODEL]
    if current.model_id == target.model_id:
        target = BUILTIN_MODELS[NOVA_PRO if current.media.image_formats else NOVA_MICRO]
    region = target.regions[0]
    return (
        f'To fine-tune {target.display_name} in {region} instead, set "base_model_id": '
        f'"{target.model_id}" in cdk.json (or deploy with -c base_model_id={target.model_id}); the '
        f"Region follows the model, and its data format is {target.data_format} (finetune convert "
        f"--model {target.model_id} rewrites a dataset)."
    )


def run_preflight(bedrock: Any, quotas: Any, settings: PreflightSettings, now: datetime) -> PreflightResult:
    """Every check, in order of cost. Raises PreflightFailed on the first hard problem."""
    check_hyperparameter_defaults(settings)
    details = get_model_details(bedrock, settings)
    warnings = check_model(details, settings, now)
    lists = QuotaLists(quotas)
    quota_summary, quota_warning = check_model_units_quota(lists, settings, details.get("modelName", ""))
    if quota_warning:
        warnings.append(quota_warning)
    jobs, jobs_summary, jobs_warning = check_concurrent_jobs_quota(lists, settings.max_concurrent_jobs)
    if jobs_warning:
        warnings.append(jobs_warning)
    return PreflightResult(
        model_arn=str(details.get("modelArn", "")),
        model_name=str(details.get("modelName") or settings.base_model_id),
        lifecycle_status=str((details.get("modelLifecycle") or {}).get("status", "unknown")),
        quota=quota_summary,
        warnings=tuple(warnings),
        max_concurrent_jobs=jobs,
        jobs_quota=jobs_summary,
    )


def is_concurrent_jobs_quota(name: str) -> bool:
    """Whether a quota's name speaks of concurrent model customization (fine-tuning) jobs."""
    lowered = name.lower()
    return "concurrent" in lowered and "job" in lowered and any(w in lowered for w in _JOB_WORDS)


def effective_job_limit(configured: int | None, quota: int | None) -> int:
    """How many jobs the training queue lets run at once: the configured value, never above the
    account's quota; the quota alone; or the default when neither is known."""
    if configured is not None and quota is not None:
        return max(1, min(configured, quota))
    if configured is not None:
        return configured
    return max(1, quota) if quota is not None else DEFAULT_MAX_CONCURRENT_JOBS


def check_concurrent_jobs_quota(quotas: Any, configured: int | None) -> tuple[int, str, str | None]:
    """The account's quota on concurrent customization jobs, and the limit the training queue applies:
    ``(limit, summary, warning or None)``. Never fails the deployment, and warns only when the
    configured ``max_concurrent_jobs`` is above the quota: a quota that is not listed or cannot be read
    (the model-units check warns about that) leaves the configured value or the default, and a job
    Bedrock refuses for its quota waits in the queue rather than failing."""
    lists = quotas if isinstance(quotas, QuotaLists) else QuotaLists(quotas)
    try:
        found = lists.find_all(is_concurrent_jobs_quota)
    except (ClientError, BotoCoreError):
        return effective_job_limit(configured, None), "not checked", None
    if not found:
        return effective_job_limit(configured, None), "not found", None
    quota = min(found, key=lambda q: float(q.get("Value", 0)))
    value = int(float(quota.get("Value", 0)))
    summary = f"{quota.get('QuotaName')} ({quota.get('QuotaCode')}) = {value}"
    limit = effective_job_limit(configured, value)
    if configured is not None and configured > value:
        return (
            limit,
            summary,
            (
                f"max_concurrent_jobs = {configured} is above the account's quota ({summary}); the training "
                f"queue lets {limit} run at once."
            ),
        )
    return limit, summary, None


def check_hyperparameter_defaults(settings: PreflightSettings) -> None:
    """The configured default hyperparameters must be names and values the model catalog accepts."""
    problems = check_hyperparameters(settings.hyperparameters, settings.model)
    if problems:
        raise PreflightFailed(
            "Configured hyperparameters are not accepted for "
            f"{settings.model.display_name}: {'; '.join(p.message for p in problems)}. "
            "Fix the 'hyperparameters' key in cdk.json and deploy again."
        )


def get_model_details(bedrock: Any, settings: PreflightSettings) -> dict[str, Any]:
    """GetFoundationModel for the base model, with deploy-failing messages for what goes wrong."""
    model_id, region = settings.base_model_id, settings.region
    try:
        response = bedrock.get_foundation_model(modelIdentifier=model_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in ("ResourceNotFoundException", "ValidationException"):
            regions = ", ".join(settings.model.regions)
            where = f" {settings.model.display_name} fine-tuning is documented in {regions}."
            notice = settings.model.lifecycle_in(region)
            lifecycle = (
                f" AWS documents its end of life in {region} on {notice.date} ({notice.source}): after "
                "that date Bedrock neither fine-tunes nor serves it."
                if notice is not None and notice.status == "EOL"
                else ""
            )
            raise PreflightFailed(
                f"Base model {model_id} is not offered by Amazon Bedrock in {region} "
                f"(GetFoundationModel: {code}: {message}).{where if settings.model.regions else ''}"
                f"{lifecycle} Deploy to a region that offers it (-c region=...) or choose another "
                f"base_model_id. {model_change(settings.model)}"
            ) from exc
        if code == "AccessDeniedException":
            raise PreflightFailed(
                f"Preflight may not call bedrock:GetFoundationModel for {model_id} in {region} "
                f"({code}: {message}). If an SCP or permissions boundary forbids it, deploy with "
                "-c preflight=false to skip the preflight checks."
            ) from exc
        raise PreflightFailed(
            f"GetFoundationModel for {model_id} in {region} failed: {code}: {message}. Deploy again to retry."
        ) from exc
    except BotoCoreError as exc:
        raise PreflightFailed(f"GetFoundationModel for {model_id} in {region} failed: {exc}") from exc
    return dict(response.get("modelDetails") or {})


def check_model(details: Mapping[str, Any], settings: PreflightSettings, now: datetime) -> list[str]:
    """Fail when the model cannot be fine-tuned or is past end of life; warnings otherwise."""
    model_id, region = settings.base_model_id, settings.region
    supported = list(details.get("customizationsSupported") or [])
    if "FINE_TUNING" not in supported:
        offered = ", ".join(supported) or "none"
        raise PreflightFailed(
            f"Base model {model_id} cannot be fine-tuned in {region}: Bedrock lists its customizations "
            f"as [{offered}], without FINE_TUNING. Choose a fine-tunable base model or region "
            "(see the Bedrock user guide, 'Supported models and Regions for fine-tuning')."
        )
    lifecycle = details.get("modelLifecycle") or {}
    status = str(lifecycle.get("status", "")).upper()
    end_of_life = lifecycle.get("endOfLifeTime")
    if status in _END_OF_LIFE_STATUSES or (isinstance(end_of_life, datetime) and end_of_life <= now):
        when = f" on {_day(end_of_life)}" if isinstance(end_of_life, datetime) else ""
        raise PreflightFailed(
            f"Base model {model_id} reached its end of life in {region}{when} (lifecycle status "
            f"{status or 'unknown'}); Bedrock no longer fine-tunes or serves it. "
            f"{model_change(settings.model)}"
        )
    warnings: list[str] = []
    if status == "LEGACY":
        dates = [
            f"{label} {_day(value)}"
            for label, value in (
                ("end of life", end_of_life),
                ("public extended access from", lifecycle.get("publicExtendedAccessTime")),
            )
            if isinstance(value, datetime)
        ]
        warnings.append(
            f"Base model {model_id} is LEGACY in {region}"
            + (f" ({', '.join(dates)})" if dates else "")
            + ": no new Provisioned Throughput can be bought for a Legacy model, and fine-tuning "
            f"stops at its end of life. {model_change(settings.model)}"
        )
    elif status and status != "ACTIVE":
        warnings.append(f"Base model {model_id} has an unrecognised lifecycle status {status!r} in {region}.")
    return warnings


def check_model_units_quota(
    quotas: Any, settings: PreflightSettings, model_name: str
) -> tuple[str, str | None]:
    """The model-units quota that buying Provisioned Throughput needs: ``(summary, warning or None)``.

    Looks the quota up by name in the applied quotas, then in the AWS defaults. When Service Quotas
    cannot be read (not allowed, not found) it says so as a warning and does not fail.
    """
    if settings.commitment:
        wanted = f"commitment quota for {model_name or settings.base_model_id}"

        def matches(name: str) -> bool:
            return (
                name.lower().startswith(COMMITMENT_QUOTA_PREFIX.lower())
                and bool(model_name)
                and (name[len(COMMITMENT_QUOTA_PREFIX) :].strip().lower() == model_name.lower())
            )
    else:
        wanted = f"'{NO_COMMITMENT_QUOTA_NAME}'"

        def matches(name: str) -> bool:
            return name.strip().lower() == NO_COMMITMENT_QUOTA_NAME.lower()

    lists = quotas if isinstance(quotas, QuotaLists) else QuotaLists(quotas)
    try:
        quota = next(iter(lists.find_all(matches)), None)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        if code not in _QUOTA_UNREADABLE:
            raise PreflightFailed(f"Service Quotas failed: {code}: {exc}. Deploy again to retry.") from exc
        return (
            "not checked",
            f"Could not read the Bedrock model-units quota ({code}); check {wanted} in Service Quotas "
            "before the first run buys Provisioned Throughput.",
        )
    except BotoCoreError as exc:
        return "not checked", f"Could not read the Bedrock model-units quota ({exc}); check {wanted} by hand."
    if quota is None:
        return (
            "not found",
            f"Service Quotas lists no Bedrock quota named {wanted}; check the model units for Provisioned "
            "Throughput by hand before the first run.",
        )
    value = float(quota.get("Value", 0))
    summary = f"{quota.get('QuotaName')} ({quota.get('QuotaCode')}) = {value:g}"
    if value <= 0:
        return summary, (
            f"Your account has no model units for Provisioned Throughput ({summary}). Runs will train, but "
            "buying throughput will fail: request model units in the AWS Support Center or Service Quotas "
            "first."
        )
    if value < settings.model_units:
        return summary, (
            f"The model-units quota ({summary}) is below the configured model_units = "
            f"{settings.model_units}; buying throughput will fail until the quota is raised or "
            "model_units lowered."
        )
    return summary, None


def _pages(quotas: Any, operation: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        params: dict[str, Any] = {"ServiceCode": QUOTA_SERVICE_CODE, "MaxResults": 100}
        if token:
            params["NextToken"] = token
        response = getattr(quotas, operation)(**params)
        yield from response.get("Quotas") or []
        token = response.get("NextToken")
        if not token:
            return


def _day(value: object) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else str(value)


def warnings_message(result: PreflightResult, settings: PreflightSettings, stack: str) -> tuple[str, str]:
    """Subject and body of the notification that carries preflight warnings."""
    subject = f"[fine-tuning] deploy of {stack}: preflight warnings"[:100]
    lines = [
        f"Stack: {stack}",
        f"Region: {settings.region}",
        f"Base model: {settings.base_model_id} ({result.model_name}, lifecycle {result.lifecycle_status})",
        f"Model-units quota: {result.quota}",
        f"Concurrent customization jobs: {result.max_concurrent_jobs} at once (quota: {result.jobs_quota})",
        "",
        "Warnings (the deployment went on):",
        *(f"- {w}" for w in result.warnings),
    ]
    return subject, "\n".join(lines)


def preflight_settings(properties: PreflightProperties) -> PreflightSettings:
    """The custom resource's properties as the checks' input."""
    return PreflightSettings(
        base_model_id=properties.base_model_id,
        region=properties.region,
        model=ModelSpec.from_dict(properties.base_model_id, properties.model_spec),
        hyperparameters=properties.hyperparameters,
        model_units=properties.model_units,
        commitment=properties.commitment,
        max_concurrent_jobs=properties.max_concurrent_jobs,
    )


def preflight_for_deploy(
    bedrock: Any, quotas: Any, sns: Any, properties: PreflightProperties, *, stack: str, now: datetime
) -> PreflightResult:
    """Create/Update of the custom resource: run the checks (raising PreflightFailed), publish warnings."""
    settings = preflight_settings(properties)
    result = run_preflight(bedrock, quotas, settings, now=now)
    if result.warnings:
        subject, body = warnings_message(result, settings, properties.stack_name or stack)
        publish_message(sns, properties.topic_arn, subject, body)
    return result


#: Attribute value when there is nothing to warn about (a stack output cannot be empty).
NO_WARNINGS = "none"
#: Custom resource responses are limited to 4 KB; warnings are short, but bound them anyway.
_MAX_WARNINGS_CHARS = 2000


def custom_resource_data(result: PreflightResult) -> dict[str, str]:
    """The custom resource's attributes: ``Warnings`` (a stack output), lifecycle and quota, and
    ``MaxConcurrentJobs`` (the training queue's limit, read by its function's environment)."""
    warnings = " | ".join(result.warnings)[:_MAX_WARNINGS_CHARS] or NO_WARNINGS
    return {
        "Warnings": warnings,
        "ModelLifecycle": result.lifecycle_status,
        "Quota": result.quota,
        JOB_LIMIT_ATTRIBUTE: str(result.max_concurrent_jobs),
        "JobsQuota": result.jobs_quota,
    }
