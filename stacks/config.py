"""Typed, validated configuration for the pipeline.

Read from CDK context (``cdk.json`` and ``-c key=value``) into one frozen object. Any unknown key or
bad value raises :class:`ConfigError` at synth time with a message that names the key, the value and
what is allowed. Constructs receive this object (or parts of it); nothing else reads context.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bedrock_finetune.catalog import (
    BUILTIN_MODELS,
    CLAUDE_3_HAIKU,
    DEFAULT_CHARS_PER_TOKEN,
    CatalogError,
    ModelSpec,
    check_hyperparameters,
    resolve_model,
)
from bedrock_finetune.endpoint_wait import polls_within
from bedrock_finetune.evaluation_config import FORMATS, METRICS, EvaluationConfig
from bedrock_finetune.pricing import PriceError, PriceOverrides, parse_price_overrides
from bedrock_finetune.quality_gate import QualityGate
from bedrock_finetune.quota_wait import EVENTS_PER_WAIT_ROUND, cap_for, longest_queue_wait, schedule

Commitment = Literal["OneMonth", "SixMonths"]
#: How a line's model is served: a custom model deployment (per token), Provisioned Throughput
#: (per hour), or not at all (train only). ``auto`` in configuration resolves to one of the first two.
ServingMode = Literal["on_demand", "provisioned", "none"]
#: When buying or changing serving waits for a person: ``provisioned`` (buying or enlarging a
#: Provisioned Throughput), ``always`` (every change of what a line serves) or ``never``.
ApprovalPolicy = Literal["provisioned", "always", "never"]
SERVING_CHOICES = ("auto", "on_demand", "provisioned", "none")
APPROVAL_CHOICES = ("provisioned", "always", "never")
RemovalPolicyName = Literal["retain", "destroy"]
QuotaPolicyName = Literal["wait", "fail"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}$")
_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]+$")
_TAG_KEY = re.compile(r"^[\w\s.:/=+@-]{1,128}$")
_TAG_VALUE = re.compile(r"^[\w\s.:/=+@-]{0,256}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


#: Where the CDK CLI puts the account of its credentials (used when ``account`` is not configured).
CLI_ACCOUNT_VARIABLE = "CDK_DEFAULT_ACCOUNT"


class ConfigError(ValueError):
    """A configuration key is unknown or has a bad value. The message names both."""


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a platform team can configure. Defaults live in :data:`DEFAULTS`."""

    stack_name: str
    region: str
    account: str | None
    base_model_id: str
    model: ModelSpec
    hyperparameters: Mapping[str, int | float]
    model_units: int
    commitment: Commitment | None
    serving: ServingMode
    approval: ApprovalPolicy
    approval_timeout_hours: int
    throughput_ttl_hours: int | None
    ttl_reminder_hours: int
    endpoint_wait_hours: int
    job_poll_seconds: int
    throughput_poll_seconds: int
    settle_seconds: int
    max_job_hours: int
    max_concurrent_jobs: int | None
    max_queue_hours: int
    deployment_quota_policy: QuotaPolicyName
    max_deployment_wait_hours: int
    notification_emails: tuple[str, ...]
    ops_topic_arn: str | None
    kms_key_arn: str | None
    removal_policy: RemovalPolicyName
    permissions_boundary_arn: str | None
    tags: Mapping[str, str]
    chars_per_token: float
    #: Prices per model over the built-in table (``pricing.prices_for(model_id, config.prices)``).
    prices: PriceOverrides
    powertools_layer_version: int
    log_retention_days: int
    preflight: bool
    delete_custom_models_on_destroy: bool
    cleanup_retry_seconds: int
    cleanup_max_hours: int
    quality_gate: QualityGate = field(default_factory=QualityGate)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    #: The models configured under ``models`` (beside the built-in catalog), parsed once.
    models: Mapping[str, ModelSpec] = field(default_factory=dict)

    @property
    def default_epochs(self) -> int | None:
        """Epochs a run trains for unless it overrides them (configured, else the model's default)."""
        value = self.hyperparameters.get("epochCount")
        if value is None and (spec := self.model.hyperparameter("epochCount")) is not None:
            value = spec.default
        return int(value) if value is not None else None

    @property
    def approval_possible(self) -> bool:
        """Whether a run may wait for an approval before its model is served."""
        return _approval_possible(self.serving, self.approval)

    @property
    def waits_for_deployment_quota(self) -> bool:
        """Whether a deployment refused for a quota waits (on-demand serving, deployment_quota_policy =
        wait); otherwise the refusal fails the run at once."""
        return self.serving == "on_demand" and self.deployment_quota_policy == "wait"

    @property
    def deployment_quota_wait_hours(self) -> int:
        """The longest a run may wait for Bedrock's deployment quota: for the line's deployment (on-demand
        serving under deployment_quota_policy = wait), and as long again for the candidate's temporary
        deployment when the line evaluates."""
        if not self.waits_for_deployment_quota:
            return 0
        return self.max_deployment_wait_hours * (2 if self.evaluation.enabled else 1)

    @property
    def execution_timeout_hours(self) -> int:
        """The whole execution's timeout: the job's maximum, the longest approval wait, the longest waits
        for a deployment quota, and a margin for validation, serving (Provisioned Throughput can take
        tens of minutes) and notification."""
        approval = self.approval_timeout_hours if self.approval_possible else 0
        return self.max_job_hours + approval + self.deployment_quota_wait_hours + EXECUTION_MARGIN_HOURS

    @property
    def queue_wait_cap_seconds(self) -> int:
        """The longest wait between two checks for a training slot (quota_wait.cap_for)."""
        return cap_for(self.job_poll_seconds)

    @property
    def queue_lease_seconds(self) -> int:
        """How long a ticket stays valid unrenewed: a run renews it when it looks at the queue (at most
        quota_wait.longest_queue_wait apart), and first joins before settling and validation (up to
        15 minutes)."""
        return 2 * longest_queue_wait(self.queue_wait_cap_seconds) + self.settle_seconds + 1800

    @property
    def deployment_wait_cap_seconds(self) -> int:
        """The longest wait between two tries of a deployment refused for a quota."""
        return cap_for(self.throughput_poll_seconds)

    @property
    def key_outlives_stack(self) -> bool:
        """Whether something encrypted with the key stays after ``cdk destroy``: the custom models
        (kept unless delete_custom_models_on_destroy) or a throughput with a commitment term."""
        return not self.delete_custom_models_on_destroy or self.commitment is not None

    @property
    def cleanup_max_attempts(self) -> int:
        """How many times a clean-up may run while a throughput settles (Creating -> deletable). A
        failure chain still looping when the execution times out hands over to the clean-up machine."""
        return self.cleanup_max_hours * 3600 // self.cleanup_retry_seconds + 1


#: Hours the execution may run beyond ``max_job_hours`` (validation, provisioning, notification).
EXECUTION_MARGIN_HOURS = 2

#: Step Functions fails a Standard execution whose history reaches 25,000 events ("Maximum execution
#: history size", https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
HISTORY_EVENT_LIMIT = 25_000
#: What the waiting loops may use at most (the endpoint's polls, the waits for a training slot or a
#: quota). The other 5,000 are for the rest of the run (about 70 events, see
#: :func:`polling_history_events`) and for retries (3 events each: TaskFailed, TaskScheduled,
#: TaskStarted).
POLLING_EVENT_BUDGET = 20_000
#: History events one visit of a state adds, by state type
#: (https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html).
EVENTS_PER_STATE: Mapping[str, int] = {
    "Wait": 2,  # WaitStateEntered, WaitStateExited
    "Task": 5,  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
    "Choice": 2,  # ChoiceStateEntered, ChoiceStateExited
    "Pass": 2,  # PassStateEntered, PassStateExited
}
#: One poll of the endpoint loop: Wait -> Lambda task -> Choice.
EVENTS_PER_POLL = EVENTS_PER_STATE["Wait"] + EVENTS_PER_STATE["Task"] + EVENTS_PER_STATE["Choice"]
#: Waiting for the customization job, whatever its length: "Wait for the job to end", a task token
#: answered once, when the job has ended (a failed or stopped job fails it: no Choice follows).
JOB_WAIT_EVENTS = EVENTS_PER_STATE["Task"]


def polling_history_events(*, throughput_poll_seconds: int, endpoint_wait_hours: int = 6) -> int:
    """The most history events waiting for the job and polling the endpoint add to one execution.

    The job is not polled: "Wait for the job to end" waits on a task token that the job's end answers
    once (``JOB_WAIT_EVENTS`` = 5 events, for a job of a minute or of ``max_job_hours``). The endpoint
    is polled, 9 events a look::

        Wait for endpoint        WaitStateEntered, WaitStateExited                   2
        Get endpoint status      TaskStateEntered, TaskScheduled, TaskStarted,
                                 TaskSucceeded, TaskStateExited                      5
        Endpoint ready?          ChoiceStateEntered, ChoiceStateExited               2

    with waits of 1, 2, 4... minutes up to ``throughput_poll_seconds``, until the endpoint is ready or
    ``endpoint_wait_hours`` have passed (Get endpoint status then reports it failed)::

        events = 5 + 9 * endpoint_wait.polls_within(endpoint_wait_hours, throughput_poll_seconds)

    Defaults: 6 h with waits up to 300 s: 74 looks, 671 events. 48 h at 30 s: 5,760 looks (51,845
    events), over the budget.

    The rest of a run adds about 70 events (execution started and ended; Identify run, Join the
    training queue, Let uploads settle, Validate dataset, Take a training slot, Training slot taken?,
    Start customization job, Collect training results, Plan serving, Approval needed?, Request
    approval, the evaluation's steps, Serve model, Record served version, Notify;
    or a failure's Pass, Clean up failed run, Notify failure and Run failed), which
    :data:`POLLING_EVENT_BUDGET` leaves room for; the waits for a training slot are counted by
    :func:`waiting_history_events`.
    """
    return JOB_WAIT_EVENTS + EVENTS_PER_POLL * polls_within(
        endpoint_wait_hours * 3600, throughput_poll_seconds
    )


def _check_history_limit(*, throughput_poll_seconds: int, endpoint_wait_hours: int = 6) -> None:
    """Reject an endpoint poll cap and deadline whose polling could outgrow the execution history."""
    events = polling_history_events(
        throughput_poll_seconds=throughput_poll_seconds, endpoint_wait_hours=endpoint_wait_hours
    )
    if events <= POLLING_EVENT_BUDGET:
        return
    smallest = next(
        cap
        for cap in range(throughput_poll_seconds, 3601)
        if polling_history_events(throughput_poll_seconds=cap, endpoint_wait_hours=endpoint_wait_hours)
        <= POLLING_EVENT_BUDGET
    )
    raise ConfigError(
        f"throughput_poll_seconds = {throughput_poll_seconds} with endpoint_wait_hours = "
        f"{endpoint_wait_hours}: looking at the endpoint after 1, 2, 4... minutes, then every "
        f"{throughput_poll_seconds} s, for up to {endpoint_wait_hours} h adds up to {events:,} history "
        f"events, over the {POLLING_EVENT_BUDGET:,} the pipeline allows for waiting (Step Functions fails "
        f"an execution at {HISTORY_EVENT_LIMIT:,}). With endpoint_wait_hours = {endpoint_wait_hours}, the "
        f"smallest allowed throughput_poll_seconds is {smallest}."
    )


def _waiting_rounds(limit_seconds: int, cap: int) -> int:
    """The most rounds a quota or slot wait of up to ``limit_seconds`` takes (quota_wait's schedule)."""
    return sum(1 for _ in schedule(limit_seconds, cap))


def waiting_history_events(
    *,
    job_poll_seconds: int,
    throughput_poll_seconds: int,
    max_queue_hours: int,
    max_deployment_wait_hours: int | None,
    evaluation_deployment: bool = False,
) -> int:
    """The most history events the waiting loops add on top of :func:`polling_history_events`.

    A run waiting for a training slot loops "Take a training slot" (Task, 5 events) -> "Training slot
    taken?" (Choice, 2) -> "Waiting for a training slot" (Wait, 2), and after Bedrock refuses its job
    for a quota also "Start customization job" (Task, 5): at most 14 events a round, the waits
    following quota_wait's schedule (2, 4, 8 minutes..., then every max(10 min, job_poll_seconds)) for
    up to ``max_queue_hours``. A deployment that waits for its quota (``max_deployment_wait_hours``,
    None under the fail policy) loops the same way, its waits capped by max(10 min,
    throughput_poll_seconds). Nothing else polls meanwhile (the job is waited for with a task token),
    so every round counts. With ``evaluation_deployment`` (an on-demand line that evaluates), the
    candidate's temporary deployment may wait for the quota as long again (Evaluate candidate ->
    Candidate scored? -> Wait for candidate deployment: 9 events a round, counted as 14). Defaults: a
    24 h queue wait takes at most 145 rounds, 2,030 events.
    """
    rounds = _waiting_rounds(max_queue_hours * 3600, cap_for(job_poll_seconds))
    if max_deployment_wait_hours:
        deployment = _waiting_rounds(max_deployment_wait_hours * 3600, cap_for(throughput_poll_seconds))
        rounds += deployment * (2 if evaluation_deployment else 1)
    return EVENTS_PER_WAIT_ROUND * rounds


def _check_waiting_history(
    *,
    job_poll_seconds: int,
    throughput_poll_seconds: int,
    max_queue_hours: int,
    max_deployment_wait_hours: int | None,
    endpoint_wait_hours: int = 6,
    evaluation_deployment: bool = False,
) -> None:
    """Reject waits for a slot or a quota that, with the polling, could outgrow the execution history."""
    polling = polling_history_events(
        throughput_poll_seconds=throughput_poll_seconds, endpoint_wait_hours=endpoint_wait_hours
    )
    waiting = waiting_history_events(
        job_poll_seconds=job_poll_seconds,
        throughput_poll_seconds=throughput_poll_seconds,
        max_queue_hours=max_queue_hours,
        max_deployment_wait_hours=max_deployment_wait_hours,
        evaluation_deployment=evaluation_deployment,
    )
    if polling + waiting <= POLLING_EVENT_BUDGET:
        return
    deployment = (
        f" and max_deployment_wait_hours = {max_deployment_wait_hours}" if max_deployment_wait_hours else ""
    )
    raise ConfigError(
        f"max_queue_hours = {max_queue_hours}{deployment}: waiting for a training slot (or a quota) checks "
        f"again at least every {cap_for(job_poll_seconds)} s, which with the polling adds up to "
        f"{polling + waiting:,} history events ({polling:,} polling, {waiting:,} waiting), over the "
        f"{POLLING_EVENT_BUDGET:,} the pipeline allows (Step Functions fails an execution at "
        f"{HISTORY_EVENT_LIMIT:,}). Lower max_queue_hours"
        f"{' or max_deployment_wait_hours' if deployment else ''}, or lengthen job_poll_seconds and "
        "throughput_poll_seconds."
    )


#: What the failure chain's clean-up loop may use at most (each attempt: Wait, Task, Choice), out of
#: the events :data:`POLLING_EVENT_BUDGET` leaves.
CLEANUP_EVENT_BUDGET = 2_000


def _check_cleanup_history(*, cleanup_retry_seconds: int, cleanup_max_hours: int) -> None:
    """Reject a clean-up retry interval and duration whose loop could crowd the execution history."""
    attempts = cleanup_max_hours * 3600 // cleanup_retry_seconds + 1
    if attempts * EVENTS_PER_POLL <= CLEANUP_EVENT_BUDGET:
        return
    smallest = math.ceil(cleanup_max_hours * 3600 / (CLEANUP_EVENT_BUDGET // EVENTS_PER_POLL - 1))
    raise ConfigError(
        f"cleanup_retry_seconds = {cleanup_retry_seconds} with cleanup_max_hours = {cleanup_max_hours}: "
        f"{attempts} clean-up attempts would add {attempts * EVENTS_PER_POLL:,} history events, over the "
        f"{CLEANUP_EVENT_BUDGET:,} allowed. With cleanup_max_hours = {cleanup_max_hours}, the smallest "
        f"allowed cleanup_retry_seconds is {smallest}."
    )


# One entry per configuration key: its default and a one-line description (README reference).
DEFAULTS: dict[str, tuple[Any, str]] = {
    "stack_name": ("BedrockFineTuning", "CloudFormation stack name."),
    "region": (
        None,
        "Deployment Region; by default the first Region where the base model can be fine-tuned.",
    ),
    "account": (None, "12-digit account ID; defaults to the CLI's account (CDK_DEFAULT_ACCOUNT)."),
    "base_model_id": (CLAUDE_3_HAIKU, "Base model to fine-tune; must be in the model catalog or `models`."),
    "models": ({}, "Extra model specs (limits, hyperparameter ranges) for newly fine-tunable models."),
    "hyperparameters": (
        {},
        "Default hyperparameters for every run, checked against the catalog: an object of name -> value, "
        "or of model id -> such an object (only the base model's entry applies).",
    ),
    "model_units": (1, "Provisioned Throughput model units (integer, 1 or more)."),
    "commitment": ("none", "Provisioned Throughput commitment: none, OneMonth or SixMonths."),
    "serving": (
        "auto",
        "How a line's model is served: auto (on_demand where the model supports it, else provisioned), "
        "on_demand, provisioned or none (train only).",
    ),
    "approval": (
        "provisioned",
        "What waits for a person's approval: provisioned (buying a Provisioned Throughput), always "
        "(every change of what a line serves) or never.",
    ),
    "approval_timeout_hours": (
        72,
        "Hours an approval request waits for an answer (1-168); unanswered, nothing is bought.",
    ),
    "throughput_ttl_hours": (
        None,
        "Hours a line's no-commitment Provisioned Throughput lives before it is deleted (1-8760); unset: "
        "no time to live.",
    ),
    "ttl_reminder_hours": (24, "Hours before the time to live ends that a reminder is sent (1-168)."),
    "endpoint_wait_hours": (
        6,
        "Hours to wait for an endpoint to be ready (Provisioned Throughput InService, deployment "
        "Active) before the run fails (1-48).",
    ),
    "job_poll_seconds": (
        600,
        "Seconds between the fallback checks of the jobs runs wait for (60-3600, whole minutes): a job's "
        "end event wakes its run within a minute; this bounds how late a lost event is noticed. Also the "
        "training queue's longest wait between checks (at least 600).",
    ),
    "throughput_poll_seconds": (
        300,
        "Longest wait between two looks at an endpoint (Provisioned Throughput, deployment) while it "
        "gets ready (30-3600): the waits start at 60 s and double up to it.",
    ),
    "settle_seconds": (60, "Seconds to wait after train.jsonl lands before reading the run folder (0-900)."),
    "cleanup_retry_seconds": (
        300,
        "Seconds between clean-up attempts while a throughput is still Creating and cannot be deleted "
        "(60-3600).",
    ),
    "cleanup_max_hours": (
        2,
        "How long clean-up keeps waiting for such a throughput before it reports it still billing (1-24).",
    ),
    "max_job_hours": (
        72,
        "Maximum customization job duration in hours (1-720): the timeout of Wait for the job to end, "
        "and part of the execution timeout. Waiting for the job adds the same 5 history events however "
        "long it runs (see polling_history_events).",
    ),
    "max_concurrent_jobs": (
        None,
        "Customization jobs the pipeline runs at once (1-100); other runs wait in the training queue. "
        "By default the account's Bedrock quota, read by the deploy-time preflight; a value above the "
        "quota is lowered to it.",
    ),
    "max_queue_hours": (
        24,
        "How long a run may wait for a training slot before it fails (1-720, below max_job_hours: the "
        "wait counts in the execution timeout). Nothing is bought for a run that gives up.",
    ),
    "deployment_quota_policy": (
        "fail",
        "When Bedrock refuses a model deployment for a quota (deployments per account): fail at once, or "
        "wait (with back-off, up to max_deployment_wait_hours).",
    ),
    "max_deployment_wait_hours": (
        6,
        "With deployment_quota_policy = wait: how long a run waits for a deployment quota (1-72).",
    ),
    "notification_emails": ([], "E-mail addresses subscribed to the notification topic."),
    "ops_topic_arn": (
        None,
        "SNS topic (ARN, in the stack's Region) for the pipeline's alarms; by default they go to the "
        "notification topic.",
    ),
    "kms_key_arn": (None, "Existing KMS key ARN to use; by default the app creates a key with rotation."),
    "removal_policy": ("retain", "What `cdk destroy` does with the bucket and key: retain or destroy."),
    "permissions_boundary_arn": (None, "Managed policy ARN applied as permissions boundary to every role."),
    "tags": ({}, "Tags applied to every resource (object of key -> value)."),
    "chars_per_token": (DEFAULT_CHARS_PER_TOKEN, "Characters per token for the validator's token estimate."),
    "prices": (
        {},
        "Prices in USD for the cost estimates, over the built-in table in lambdas/bedrock_finetune/"
        "pricing.py: {model_id: {field: USD}}.",
    ),
    "powertools_layer_version": (38, "Version of the public Powertools for AWS Lambda (Python) V3 layer."),
    "log_retention_days": (90, "Retention of the pipeline's log groups, in days."),
    "preflight": (True, "Check at deploy time that Bedrock can serve the base model; false skips it."),
    "delete_custom_models_on_destroy": (False, "Also delete this stack's custom models on `cdk destroy`."),
    "quality_gate_max_validation_loss": (None, "Buy throughput only if final validation loss <= this."),
    "quality_gate_max_loss_ratio": (
        None,
        "Buy throughput only if final/first-epoch validation loss <= this.",
    ),
    "quality_gate_optional": (
        False,
        "Let a run through when its quality gate has nothing to measure (no usable validation metrics); "
        "by default such a run fails.",
    ),
    "evaluation": (
        True,
        "Score each new version on held-out prompts against the line's current model (or the base model) "
        "before it is served; false serves it on its gates alone.",
    ),
    "evaluation_format": (
        "none",
        "The answers' declared format, checked per prompt: none or json (parses as JSON).",
    ),
    "evaluation_judge_model_id": (
        None,
        "A model that grades each answer 1-5 against the reference through Converse (rubric in "
        "lambdas/bedrock_finetune/rubrics/correctness.md); unset: no judge.",
    ),
    "evaluation_metric": (
        "token_f1",
        "The metric evaluation_gate compares: exact_match, token_f1, rouge_l, format or judge.",
    ),
    "evaluation_gate_margin": (
        0.0,
        "evaluation_gate: a candidate scoring below the current model by more than this (0-1) is kept, "
        "not served.",
    ),
    "evaluation_gate_floor": (
        None,
        "evaluation_gate: a candidate scoring below this (0-1) is kept, not served.",
    ),
    "evaluation_sample_size": (
        100,
        "Prompts sampled (seeded) from validation.jsonl when a run has no evaluation.jsonl (1-1000).",
    ),
    "evaluation_max_tokens": (1024, "Most tokens each evaluation answer may have (16-8192)."),
}

#: The retention periods CloudWatch Logs accepts, in days, and the name CDK's ``RetentionDays`` gives each.
LOG_RETENTION_DAYS: Mapping[int, str] = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
    1096: "THREE_YEARS", 1827: "FIVE_YEARS", 3653: "TEN_YEARS",
}  # fmt: skip


def is_cdk_context_key(key: str) -> bool:
    """CDK's own context keys (feature flags, CLI settings) are namespaced; ours are snake_case."""
    return key.startswith("@") or ":" in key or key.startswith("cdk")


def load_config(context: Mapping[str, Any], environment: Mapping[str, str] | None = None) -> PipelineConfig:
    """Validate CDK context into a :class:`PipelineConfig`.

    ``context`` holds the app's context values (cdk.json plus ``-c`` overrides, which arrive as
    strings). ``environment`` supplies ``CDK_DEFAULT_ACCOUNT`` when ``account`` is not configured.
    """
    unknown = sorted(k for k in context if not is_cdk_context_key(k) and k not in DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown configuration key(s): {', '.join(unknown)}. Allowed keys: {', '.join(DEFAULTS)}"
        )
    raw = {key: context.get(key, default) for key, (default, _) in DEFAULTS.items()}
    r = _Reader(raw)

    models = r.models("models")
    base_model_id = r.string("base_model_id")
    try:
        model = resolve_model(base_model_id, models)
    except CatalogError as exc:
        raise ConfigError(f"base_model_id = {base_model_id!r}: {exc}") from exc

    hyperparameters = _hyperparameters_for(r.mapping("hyperparameters"), base_model_id, models)
    problems = check_hyperparameters(hyperparameters, model)
    if problems:
        raise ConfigError("hyperparameters: " + "; ".join(p.message for p in problems))
    parsed_hps = {
        name: (int(float(str(v))) if spec.kind == "int" else float(str(v)))
        for name, v in hyperparameters.items()
        if (spec := model.hyperparameter(name)) is not None
    }

    region = r.optional_string("region") or (model.regions[0] if model.regions else "")
    if not region:
        raise ConfigError(
            f"region is not set and {model.display_name} lists no Region under models.<id>.regions; "
            "set -c region=..."
        )
    if not _REGION.match(region):
        raise ConfigError(f"region = {region!r}: not an AWS region name (e.g. us-west-2)")
    if model.regions and region not in model.regions:
        raise ConfigError(
            f"region = {region!r}: {model.display_name} fine-tuning is offered in "
            f"{', '.join(model.regions)} only. Deploy there (-c region={model.regions[0]}), or if AWS now "
            "offers it in this region, list the region under models.<id>.regions."
        )
    account = r.optional_string("account") or (environment or {}).get(CLI_ACCOUNT_VARIABLE)
    if account is not None and not _ACCOUNT.match(account):
        raise ConfigError(f"account = {account!r}: must be a 12-digit AWS account ID")

    commitment_raw = r.string("commitment")
    commitments = {"none": None, "OneMonth": "OneMonth", "SixMonths": "SixMonths"}
    if commitment_raw not in commitments:
        raise ConfigError(f"commitment = {commitment_raw!r}: allowed values are none, OneMonth, SixMonths")

    removal = r.string("removal_policy")
    if removal not in ("retain", "destroy"):
        raise ConfigError(f"removal_policy = {removal!r}: allowed values are retain, destroy")

    kms_key_arn = r.optional_string("kms_key_arn")
    if kms_key_arn is not None and not _KMS_KEY_ARN.match(kms_key_arn):
        raise ConfigError(
            f"kms_key_arn = {kms_key_arn!r}: must be a KMS key ARN, "
            "arn:aws:kms:<region>:<account>:key/<key-id> (aliases are not accepted)"
        )
    boundary = r.optional_string("permissions_boundary_arn")
    if boundary is not None and not _POLICY_ARN.match(boundary):
        raise ConfigError(
            f"permissions_boundary_arn = {boundary!r}: must be an IAM managed policy ARN "
            "(arn:aws:iam::<account>:policy/<name>)"
        )
    emails = r.string_list("notification_emails")
    for email in emails:
        if not _EMAIL.match(email):
            raise ConfigError(f"notification_emails: {email!r} is not an e-mail address")

    ops_topic_arn = r.optional_string("ops_topic_arn")
    if ops_topic_arn is not None:
        topic = _SNS_TOPIC_ARN.match(ops_topic_arn)
        if topic is None:
            raise ConfigError(
                f"ops_topic_arn = {ops_topic_arn!r}: must be a standard SNS topic ARN, "
                "arn:aws:sns:<region>:<account>:<topic name> (letters, digits, - and _)"
            )
        if topic.group(1) != region:
            raise ConfigError(
                f"ops_topic_arn = {ops_topic_arn!r}: the topic is in {topic.group(1)}, the stack in "
                f"{region}; CloudWatch alarms notify topics in their own Region"
            )

    tags = r.mapping("tags")
    for key, value in tags.items():
        if not _TAG_KEY.match(key) or key.lower().startswith("aws:"):
            raise ConfigError(f"tags: key {key!r} is not a valid tag key (1-128 chars, not aws:)")
        if not isinstance(value, str) or not _TAG_VALUE.match(value):
            raise ConfigError(f"tags.{key} = {value!r}: must be a string of up to 256 allowed characters")

    stack_name = r.string("stack_name")
    if not _STACK_NAME.match(stack_name):
        raise ConfigError(f"stack_name = {stack_name!r}: letters, digits and hyphens, starting with a letter")

    retention = r.integer("log_retention_days", 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"log_retention_days = {retention}: CloudWatch accepts {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )

    job_poll_seconds = r.integer("job_poll_seconds", 60, 3600)
    throughput_poll_seconds = r.integer("throughput_poll_seconds", 30, 3600)
    max_job_hours = r.integer("max_job_hours", 1, 720)
    serving = _serving_mode(r.string("serving"), model)
    approval = r.string("approval")
    if approval not in APPROVAL_CHOICES:
        raise ConfigError(f"approval = {approval!r}: allowed values are {', '.join(APPROVAL_CHOICES)}")
    approval_timeout_hours = r.integer("approval_timeout_hours", 1, 168)
    endpoint_wait_hours = r.integer("endpoint_wait_hours", 1, 48)
    ttl_hours = r.optional_integer("throughput_ttl_hours", 1, 8760)
    ttl_reminder_hours = r.integer("ttl_reminder_hours", 1, 168)
    if ttl_hours is not None and serving != "provisioned":
        raise ConfigError(
            f"throughput_ttl_hours = {ttl_hours}: a time to live applies to Provisioned Throughput, but "
            f"serving resolves to {serving!r}; unset throughput_ttl_hours or set serving=provisioned"
        )
    if ttl_hours is not None and commitments.get(r.string("commitment")) is not None:
        raise ConfigError(
            f"throughput_ttl_hours = {ttl_hours} with commitment = {r.string('commitment')}: a committed "
            "Provisioned Throughput cannot be deleted before its term ends; unset one of them"
        )
    approval_hours = approval_timeout_hours if _approval_possible(serving, approval) else 0
    _check_cleanup_history(
        cleanup_retry_seconds=r.integer("cleanup_retry_seconds", 60, 3600),
        cleanup_max_hours=r.integer("cleanup_max_hours", 1, 24),
    )
    _check_history_limit(
        throughput_poll_seconds=throughput_poll_seconds, endpoint_wait_hours=endpoint_wait_hours
    )
    max_concurrent_jobs = r.optional_integer("max_concurrent_jobs", 1, 100)
    max_queue_hours = r.integer("max_queue_hours", 1, 720)
    if max_queue_hours >= max_job_hours:
        raise ConfigError(
            f"max_queue_hours = {max_queue_hours}: must be below max_job_hours = {max_job_hours}. The "
            f"execution times out {max_job_hours + approval_hours + EXECUTION_MARGIN_HOURS} h after the "
            "upload, the wait "
            f"for a training slot included, so a run that waited that long would have no time left to train: "
            f"set max_queue_hours to at most {max_job_hours - 1}."
        )
    deployment_quota_policy = r.string("deployment_quota_policy")
    if deployment_quota_policy not in ("wait", "fail"):
        raise ConfigError(
            f"deployment_quota_policy = {deployment_quota_policy!r}: allowed values are wait, fail"
        )
    max_deployment_wait_hours = r.integer("max_deployment_wait_hours", 1, 72)
    evaluation = _evaluation(r)
    _check_waiting_history(
        job_poll_seconds=job_poll_seconds,
        throughput_poll_seconds=throughput_poll_seconds,
        max_queue_hours=max_queue_hours,
        max_deployment_wait_hours=max_deployment_wait_hours if deployment_quota_policy == "wait" else None,
        endpoint_wait_hours=endpoint_wait_hours,
        evaluation_deployment=serving == "on_demand" and evaluation.enabled,
    )

    return PipelineConfig(
        stack_name=stack_name,
        region=region,
        account=account,
        base_model_id=base_model_id,
        model=model,
        hyperparameters=parsed_hps,
        model_units=r.integer("model_units", 1, 1000),
        commitment=commitments[commitment_raw],  # type: ignore[arg-type]
        serving=serving,
        approval=approval,  # type: ignore[arg-type]
        approval_timeout_hours=approval_timeout_hours,
        throughput_ttl_hours=ttl_hours,
        ttl_reminder_hours=ttl_reminder_hours,
        endpoint_wait_hours=endpoint_wait_hours,
        job_poll_seconds=job_poll_seconds,
        throughput_poll_seconds=throughput_poll_seconds,
        models=models,
        settle_seconds=r.integer("settle_seconds", 0, 900),
        cleanup_retry_seconds=r.integer("cleanup_retry_seconds", 60, 3600),
        cleanup_max_hours=r.integer("cleanup_max_hours", 1, 24),
        max_job_hours=max_job_hours,
        max_concurrent_jobs=max_concurrent_jobs,
        max_queue_hours=max_queue_hours,
        deployment_quota_policy=deployment_quota_policy,  # type: ignore[arg-type]
        max_deployment_wait_hours=max_deployment_wait_hours,
        notification_emails=tuple(emails),
        ops_topic_arn=ops_topic_arn,
        kms_key_arn=kms_key_arn,
        removal_policy=removal,  # type: ignore[arg-type]
        permissions_boundary_arn=boundary,
        tags={k: str(v) for k, v in tags.items()},
        chars_per_token=r.number("chars_per_token", 0.5, 20),
        prices=_prices(r.mapping("prices", _PRICES_EXAMPLE), models),
        powertools_layer_version=r.integer("powertools_layer_version", 1, 10_000),
        log_retention_days=retention,
        preflight=r.boolean("preflight"),
        delete_custom_models_on_destroy=r.boolean("delete_custom_models_on_destroy"),
        quality_gate=QualityGate(
            max_validation_loss=r.optional_number("quality_gate_max_validation_loss", 0, 1e6),
            max_loss_ratio=r.optional_number("quality_gate_max_loss_ratio", 0, 100),
            optional=r.boolean("quality_gate_optional"),
        ),
        evaluation=evaluation,
    )


def _evaluation(r: _Reader) -> EvaluationConfig:
    """The evaluation keys; a judge can only judge, and the gate's metric must be measured."""
    fmt = r.string("evaluation_format")
    if fmt not in FORMATS:
        raise ConfigError(f"evaluation_format = {fmt!r}: allowed values are {', '.join(FORMATS)}")
    metric = r.string("evaluation_metric")
    if metric not in METRICS:
        raise ConfigError(f"evaluation_metric = {metric!r}: allowed values are {', '.join(METRICS)}")
    judge = r.optional_string("evaluation_judge_model_id")
    if metric == "judge" and not judge:
        raise ConfigError("evaluation_metric = judge needs evaluation_judge_model_id (the model that grades)")
    if metric == "format" and fmt == "none":
        raise ConfigError("evaluation_metric = format needs evaluation_format (json)")
    if judge and (":custom-model" in judge or ":provisioned-model/" in judge):
        raise ConfigError(
            f"evaluation_judge_model_id = {judge!r}: a custom model or a line's endpoint may be the "
            "candidate; name a base model (or an inference profile) as the judge"
        )
    return EvaluationConfig(
        enabled=r.boolean("evaluation"),
        format=fmt,
        judge_model_id=judge,
        metric=metric,
        gate_margin=r.number("evaluation_gate_margin", 0, 1),
        gate_floor=r.optional_number("evaluation_gate_floor", 0, 1),
        sample_size=r.integer("evaluation_sample_size", 1, 1000),
        max_tokens=r.integer("evaluation_max_tokens", 16, 8192),
    )


def _approval_possible(serving: str, approval: str) -> bool:
    return serving != "none" and (
        approval == "always" or (approval == "provisioned" and serving == "provisioned")
    )


def _serving_mode(requested: str, model: ModelSpec) -> ServingMode:
    """The serving mode ``requested`` resolves to for ``model``; a mode it cannot serve fails synth."""
    if requested not in SERVING_CHOICES:
        raise ConfigError(f"serving = {requested!r}: allowed values are {', '.join(SERVING_CHOICES)}")
    supported = tuple(model.serving_modes)
    if requested == "auto":
        return "on_demand" if "on_demand" in supported else "provisioned"
    if requested != "none" and requested not in supported:
        raise ConfigError(
            f"serving = {requested}: {model.display_name} ({model.model_id}) supports "
            f"{', '.join(supported) or 'no serving mode'} (or none, train only); choose one of those"
        )
    return requested  # type: ignore[return-value]


def _hyperparameters_for(
    raw: Mapping[str, Any], base_model_id: str, models: Mapping[str, ModelSpec]
) -> dict[str, Any]:
    """The hyperparameter defaults of the base model.

    ``hyperparameters`` is either ``{name: value}`` for the configured model, or
    ``{model_id: {name: value}}`` so that one cdk.json keeps defaults for several models and
    switching ``base_model_id`` is a one-line change.
    """
    if raw and all(isinstance(v, Mapping) for v in raw.values()):
        unknown = sorted(k for k in raw if k not in BUILTIN_MODELS and k not in models)
        if unknown:
            raise ConfigError(
                f"hyperparameters: {', '.join(map(repr, unknown))} is not a model in the catalog; "
                "key the defaults by base model id, or give one object of name -> value"
            )
        return dict(raw.get(base_model_id, {}))
    return dict(raw)


_PRICES_EXAMPLE = '{"amazon.nova-lite-v1:0:300k": {"training_per_1k_tokens": 0.002}}'


def _prices(raw: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> PriceOverrides:
    """The ``prices`` key, checked as :func:`bedrock_finetune.pricing.prices_for` reads it, for the
    built-in and the configured models."""
    try:
        return parse_price_overrides(raw, known_models=set(BUILTIN_MODELS) | set(models))
    except PriceError as exc:
        raise ConfigError(str(exc)) from exc


class _Reader:
    """Coerces raw context values, which are JSON from cdk.json or strings from ``-c``."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def _fail(self, key: str, allowed: str) -> ConfigError:
        return ConfigError(f"{key} = {self._raw[key]!r}: must be {allowed}")

    def _decoded(self, key: str, json_types: tuple[type, ...]) -> Any:
        value = self._raw[key]
        if isinstance(value, str) and not isinstance(value, json_types):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    def string(self, key: str) -> str:
        value = self._raw[key]
        if not isinstance(value, str) or not value.strip():
            raise self._fail(key, "a non-empty string")
        return value.strip()

    def optional_string(self, key: str) -> str | None:
        value = self._raw[key]
        if value is None or value in ("", "none", "null"):
            return None
        return self.string(key)

    def _bounded(self, key: str, value: float, low: float, high: float, what: str) -> None:
        if not low <= value <= high:
            raise ConfigError(f"{key} = {self._raw[key]!r}: must be {what} from {low:g} to {high:g}")

    def integer(self, key: str, low: int, high: int) -> int:
        value = self._decoded(key, ())
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"an integer from {low} to {high}")
        self._bounded(key, value, low, high, "an integer")
        return value

    def optional_integer(self, key: str, low: int, high: int) -> int | None:
        if self._raw[key] in (None, "", "none", "null"):
            return None
        return self.integer(key, low, high)

    def number(self, key: str, low: float, high: float) -> float:
        value = self._decoded(key, ())
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"a number from {low:g} to {high:g}")
        self._bounded(key, float(value), low, high, "a number")
        return float(value)

    def optional_number(self, key: str, low: float, high: float) -> float | None:
        if self._raw[key] in (None, "", "none", "null"):
            return None
        return self.number(key, low, high)

    def boolean(self, key: str) -> bool:
        value = self._decoded(key, ())
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def mapping(self, key: str, example: str = '{"epochCount": 2}') -> dict[str, Any]:
        value = self._decoded(key, ())
        if not isinstance(value, dict):
            raise self._fail(key, f"a JSON object, e.g. {example}")
        return value

    def string_list(self, key: str) -> list[str]:
        value = self._decoded(key, ())
        if isinstance(value, str):  # -c notification_emails=a@x.com,b@y.com
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings (JSON list or comma-separated)")
        return value

    def models(self, key: str) -> dict[str, ModelSpec]:
        value = self.mapping(key)
        parse: Callable[[str, Any], ModelSpec] = lambda mid, spec: ModelSpec.from_dict(mid, spec, key)  # noqa: E731
        try:
            return {model_id: parse(model_id, spec) for model_id, spec in value.items()}
        except CatalogError as exc:
            raise ConfigError(str(exc)) from exc
