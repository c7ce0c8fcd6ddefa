"""Typed settings across the Lambda boundary.

Each function has one frozen settings type. Its construct encodes it (:meth:`Settings.to_env`, or
:meth:`Settings.to_properties` for a custom resource) and its handler decodes it
(:meth:`Settings.from_env`). A variable's name is written once, in its field's :func:`setting`.

Values are encoded by the field's type: ``str``, ``int``, ``float``, ``bool``, their optional forms
(``None`` is the empty string), and mappings or frozen dataclasses as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from bedrock_finetune.evaluation_config import EvaluationConfig
from bedrock_finetune.quality_gate import QualityGate
from bedrock_finetune.quota_wait import QuotaWaitPolicy

_NAME = "setting_name"
_FROM_RUNTIME = "from_runtime"


class SettingsError(RuntimeError):
    """A setting is missing or unreadable: the deployed function and its code disagree."""


def setting(
    name: str,
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    from_runtime: bool = False,
) -> Any:
    """A settings field stored under ``name``.

    ``from_runtime``: the Lambda runtime sets it (e.g. ``AWS_REGION``); constructs never encode it.
    """
    metadata = {_NAME: name, _FROM_RUNTIME: from_runtime}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _optional(kind: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(kind, False)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0], True
    return kind, False


def _encode(kind: Any, value: Any) -> str:
    base, optional = _optional(kind)
    if value is None:
        if not optional:
            raise SettingsError(f"a value of type {kind} is required")
        return ""
    if base is bool:
        return "true" if value else "false"
    if base in (str, int, float):
        return str(value)
    if dataclasses.is_dataclass(base):
        return json.dumps(dataclasses.asdict(value))
    return json.dumps(value if not isinstance(value, Mapping) else dict(value))


def _decode(kind: Any, raw: str) -> Any:
    base, optional = _optional(kind)
    if raw == "" and optional:
        return None
    if base is bool:
        if raw not in ("true", "false"):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw == "true"
    if base in (str, int, float):
        return base(raw)
    parsed = json.loads(raw)
    if dataclasses.is_dataclass(base) and isinstance(base, type):
        return base(**parsed)
    return parsed


_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    """The settings fields of ``cls`` with their resolved types (resolved once per class)."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if _NAME in f.metadata)
    return _FIELDS[cls]


class Settings:
    """Base of the frozen settings dataclasses; see the module docstring."""

    #: What the construct is called, for error messages ("redeploy the stack").
    owner: ClassVar[str] = "the function"
    #: How the values travel: a function's ``environment``, or a custom resource's ``properties``.
    carried_in: ClassVar[str] = "environment"

    def to_env(self, *, include_runtime: bool = False) -> dict[str, str]:
        """The environment variables the construct sets. ``include_runtime`` adds those the Lambda
        runtime sets (``AWS_REGION``), as a test or the local emulation provides them."""
        return {
            f.metadata[_NAME]: _encode(kind, getattr(self, f.name))
            for f, kind in _fields(type(self))
            if include_runtime or not f.metadata[_FROM_RUNTIME]
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Decode from ``environ``; raises SettingsError naming the variable that is wrong."""
        values: dict[str, Any] = {}
        for f, kind in _fields(cls):
            name = f.metadata[_NAME]
            if name not in environ:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise SettingsError(f"{name} is not set for {cls.owner}; redeploy the stack")
            try:
                values[f.name] = _decode(kind, environ[name])
            except (ValueError, TypeError) as exc:
                raise SettingsError(
                    f"{name}={environ[name]!r} cannot be read ({exc}); redeploy the stack"
                ) from exc
        return cls(**values)

    def to_properties(self) -> dict[str, str]:
        """A custom resource's properties: the same encoding as the environment."""
        return self.to_env()

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> Self:
        """Decode a custom resource's properties (CloudFormation passes every value as a string)."""
        return cls.from_env(properties)

    @classmethod
    def variable(cls, field_name: str) -> str:
        """The variable that carries the field ``field_name`` (for a value only CloudFormation knows,
        which a construct sets itself)."""
        for f, _ in _fields(cls):
            if f.name == field_name:
                return str(f.metadata[_NAME])
        raise KeyError(f"{cls.__name__} has no setting {field_name!r}")

    @classmethod
    def names(cls, *, include_runtime: bool = True) -> tuple[str, ...]:
        """Every variable name this type reads (``include_runtime``: also the Lambda runtime's)."""
        return tuple(
            f.metadata[_NAME] for f, _ in _fields(cls) if include_runtime or not f.metadata[_FROM_RUNTIME]
        )


# ---- one settings type per function ----


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaseModelSettings(Settings):
    """The configured base model, for the functions that need its identifier."""

    base_model_id: str = setting("BASE_MODEL_ID")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenEstimateSettings(Settings):
    """How characters are counted as tokens, for the functions that estimate tokens."""

    chars_per_token: float = setting("CHARS_PER_TOKEN")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PriceSettings(Settings):
    """The price table's overrides (the ``prices`` key), for the functions that estimate a cost."""

    prices: Mapping[str, Any] = setting("PRICES", default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValidateDatasetSettings(TokenEstimateSettings, BaseModelSettings):
    """ValidateDataset: the model's limits and the configured hyperparameter defaults."""

    owner: ClassVar[str] = "ValidateDataset"
    model_spec: Mapping[str, Any] = setting("MODEL_SPEC")
    default_hyperparameters: Mapping[str, int | float] = setting(
        "DEFAULT_HYPERPARAMETERS", default_factory=dict
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaggingSettings(Settings):
    """What every function that creates a billed Bedrock resource stamps on it."""

    stack_tag: str = setting("STACK_TAG")
    resource_tags: Mapping[str, str] = setting("RESOURCE_TAGS", default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StartCustomizationJobSettings(TaggingSettings, BaseModelSettings):
    """StartCustomizationJob: the role Bedrock assumes, the base model, the custom model's key."""

    owner: ClassVar[str] = "StartCustomizationJob"
    service_role_arn: str = setting("SERVICE_ROLE_ARN")
    custom_model_kms_key_arn: str | None = setting("CUSTOM_MODEL_KMS_KEY_ARN", default=None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CollectTrainingResultsSettings(Settings):
    """CollectTrainingResults: the quality gate and the epochs asked for when the run set none."""

    owner: ClassVar[str] = "CollectTrainingResults"
    quality_gate: QualityGate = setting("QUALITY_GATE", default_factory=QualityGate)
    default_epochs: int | None = setting("DEFAULT_EPOCHS", default=None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingSettings(PriceSettings, TaggingSettings, BaseModelSettings):
    """PlanServing and ServeModel: how a line's model is served, what waits for approval, the price
    table's overrides and how long an endpoint may take to be ready."""

    owner: ClassVar[str] = "the serving functions"
    mode: str = setting("SERVING_MODE")
    approval: str = setting("APPROVAL")
    model_units: int = setting("MODEL_UNITS")
    commitment: str | None = setting("COMMITMENT", default=None)
    endpoint_wait_hours: int = setting("ENDPOINT_WAIT_HOURS", default=6)
    #: The longest wait between two looks at an endpoint (the waits start at a minute and double).
    endpoint_poll_cap_seconds: int = setting("ENDPOINT_POLL_CAP_SECONDS", default=600)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BucketSettings(Settings):
    """The dataset bucket (runs, reports and line records)."""

    bucket_name: str = setting("BUCKET_NAME")


@dataclasses.dataclass(frozen=True, kw_only=True)
class InventorySettings(ServingSettings, BucketSettings):
    """ServingInventory: the line records to read, and how serving is priced."""

    owner: ClassVar[str] = "ServingInventory"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicSettings(Settings):
    """The notification topic, for every function that publishes a notice."""

    topic_arn: str = setting("TOPIC_ARN")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportingSettings(BucketSettings, TopicSettings):
    """Where notices go and reports are kept, and the function's Region (set by the runtime)."""

    region: str = setting("AWS_REGION", default="", from_runtime=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StackReportingSettings(ReportingSettings):
    """Reporting, plus the stack's name (the commands that notices print name it)."""

    stack_name: str = setting("STACK_NAME")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApprovalSettings(StackReportingSettings):
    """RequestApproval: where the request goes, where its task token is kept, how long it waits."""

    owner: ClassVar[str] = "RequestApproval"
    timeout_hours: int = setting("APPROVAL_TIMEOUT_HOURS")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LineSettings(StackReportingSettings):
    """RecordLineVersion and ExpireThroughput: the line records, and the time to live of a line's
    no-commitment Provisioned Throughput (one-time EventBridge Scheduler schedules)."""

    owner: ClassVar[str] = "the line functions"
    ttl_hours: int | None = setting("THROUGHPUT_TTL_HOURS", default=None)
    reminder_hours: int = setting("TTL_REMINDER_HOURS", default=24)
    schedule_group: str = setting("SCHEDULE_GROUP", default="")
    expire_function_arn: str = setting("EXPIRE_FUNCTION_ARN", default="")
    scheduler_role_arn: str = setting("SCHEDULER_ROLE_ARN", default="")


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueTableSettings(Settings):
    """The training queue's table, for the functions that give a run's slot back or hand it out."""

    queue_table: str | None = setting("QUEUE_TABLE", default=None)

    @property
    def table_name(self) -> str:
        if not self.queue_table:
            raise SettingsError(
                f"{self.variable('queue_table')} is not set for {self.owner}; redeploy the stack"
            )
        return self.queue_table


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobWaitSettings(BucketSettings, QueueTableSettings):
    """WaitForJobToEnd and JobEnded: where the waiting runs' task tokens are kept
    (``reports/_waiting/``, see :mod:`bedrock_finetune.job_wait`), and the training queue's table,
    whose slot a run gives back when its job ends."""

    owner: ClassVar[str] = "the job-wait functions"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CleanUpSettings(QueueTableSettings):
    """CleanUpFailedRun and CleanUpEndedExecution: how many attempts a settling throughput gets, and
    the training queue's table (the run's slot is given back there; none: no queue)."""

    owner: ClassVar[str] = "the clean-up functions"
    max_attempts: int = setting("CLEAN_UP_MAX_ATTEMPTS")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingQueueSettings(QueueTableSettings, TopicSettings):
    """TrainingQueue: the table, how many jobs at once, how long a run may wait, where notices go."""

    owner: ClassVar[str] = "TrainingQueue"
    #: The effective limit: max_concurrent_jobs, or the account's quota read by the preflight.
    max_concurrent_jobs: int = setting("MAX_CONCURRENT_JOBS")
    max_queue_seconds: int = setting("MAX_QUEUE_SECONDS")
    #: The longest wait between two checks for a free slot (see quota_wait.cap_for).
    wait_cap_seconds: int = setting("QUEUE_WAIT_CAP_SECONDS")
    #: How long a ticket stays valid without being renewed before another run may check on it.
    lease_seconds: int = setting("QUEUE_LEASE_SECONDS")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeploymentQuotaSettings(Settings):
    """For the serving functions: what to do when Bedrock refuses a deployment for a quota
    (``deployment_quota_policy``, ``max_deployment_wait_hours``); see quota_wait.wait_or_fail."""

    owner: ClassVar[str] = "the serving functions"
    policy: str = setting("DEPLOYMENT_QUOTA_POLICY")
    max_wait_seconds: int = setting("DEPLOYMENT_QUOTA_MAX_WAIT_SECONDS")
    cap_seconds: int = setting("DEPLOYMENT_QUOTA_WAIT_CAP_SECONDS")

    def as_policy(self) -> QuotaWaitPolicy:
        if self.policy not in ("wait", "fail"):
            raise SettingsError(f"DEPLOYMENT_QUOTA_POLICY={self.policy!r}: wait or fail; redeploy the stack")
        return QuotaWaitPolicy(
            policy="wait" if self.policy == "wait" else "fail",
            max_wait_seconds=self.max_wait_seconds,
            cap_seconds=self.cap_seconds,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluationSettings(
    TokenEstimateSettings,
    PriceSettings,
    TaggingSettings,
    BaseModelSettings,
    DeploymentQuotaSettings,
    TopicSettings,
):
    """EvaluateCandidate: how a new version is scored and gated, how its tokens are priced, and what
    to do when Bedrock refuses the candidate's temporary deployment for a quota (the line's
    ``deployment_quota_policy``; the first wait is announced on the topic)."""

    owner: ClassVar[str] = "EvaluateCandidate"
    evaluation: EvaluationConfig = setting("EVALUATION", default_factory=EvaluationConfig)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotifySettings(ReportingSettings):
    """Notify and CleanUpEndedExecution: where notices and run records go, and where to look."""

    owner: ClassVar[str] = "Notify"
    pipeline_log_group: str = setting("PIPELINE_LOG_GROUP")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PreflightProperties(Settings):
    """The preflight custom resource's properties: what the stack is configured to do."""

    owner: ClassVar[str] = "the Preflight custom resource"
    carried_in: ClassVar[str] = "properties"
    base_model_id: str = setting("BaseModelId")
    region: str = setting("Region")
    model_spec: Mapping[str, Any] = setting("ModelSpec")
    hyperparameters: Mapping[str, int | float] = setting("Hyperparameters", default_factory=dict)
    model_units: int = setting("ModelUnits")
    commitment: str | None = setting("Commitment", default=None)
    topic_arn: str = setting("TopicArn")
    stack_name: str = setting("StackName", default="")
    #: max_concurrent_jobs as configured (None: the account's quota decides).
    max_concurrent_jobs: int | None = setting("MaxConcurrentJobs", default=None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TeardownProperties(Settings):
    """The teardown custom resource's properties: whose resources to delete, and how long to wait."""

    owner: ClassVar[str] = "the Teardown custom resource"
    carried_in: ClassVar[str] = "properties"
    stack_tag: str = setting("StackTag")
    region: str = setting("Region")
    topic_arn: str = setting("TopicArn")
    delete_custom_models: bool = setting("DeleteCustomModels", default=False)
    wait_seconds: int = setting("WaitSeconds")
    #: The key of the custom models and committed throughputs that outlive the stack.
    key_arn: str = setting("KeyArn", default="")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServeModelSettings(ServingSettings, DeploymentQuotaSettings, TopicSettings):
    """ServeModel: how a line is served, what it does when Bedrock refuses a deployment for a quota,
    and where the notice that it waits goes."""

    owner: ClassVar[str] = "ServeModel"
