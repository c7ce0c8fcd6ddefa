"""Emulated Bedrock control plane: what moto 5.2.5 lacks for the pipeline, added through its routing.

moto routes every Bedrock request to ``BedrockResponse.<operation in snake case>``; this module
installs its own methods there for the operations the pipeline uses. Status progressions use
moto's state manager (``ManagedState``), so a job moves ``InProgress`` -> ``Completed`` (or
``Failed`` / ``Stopping`` -> ``Stopped``) over a few ``GetModelCustomizationJob`` calls and a
Provisioned Throughput ``Creating`` -> ``InService`` (or ``Failed``); the scenario picks the
transitions and the number of polls, and ``POST /moto-api/state-manager/set-transition`` can
override the latter. Names, ARNs, status enums and error codes follow the botocore model.

On completion the job writes Bedrock's metrics CSVs under its output URI, with losses derived
deterministically from the training (and validation) records: same data, same curve.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import unquote

from moto.bedrock.models import bedrock_backends
from moto.bedrock.responses import BedrockResponse
from moto.core.exceptions import JsonRESTError
from moto.moto_api import state_manager
from moto.moto_api._internal.managed_state_model import ManagedState
from moto.s3.models import s3_backends

from bedrock_finetune.catalog import BUILTIN_MODELS
from finetune.local.scenarios import SCENARIOS, Scenario

JOB_MODEL = "bedrock::model-customization-job"
THROUGHPUT_MODEL = "bedrock::provisioned-model-throughput"
DEPLOYMENT_MODEL = "bedrock::custom-model-deployment"
#: How many describe calls a model swap (UpdateProvisionedModelThroughput, UpdateCustomModelDeployment)
#: stays Updating.
UPDATE_POLLS = 2

# botocore patterns (bedrock 2023-04-20 service model).
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*$")
_MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
_TOKEN = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?$")
_S3_URI = re.compile(r"^s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/.*)?$")
_TAG_TEXT = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$")
_COMMITMENTS = ("OneMonth", "SixMonths")
#: Provisioned Throughput statuses in which DeleteProvisionedModelThroughput answers ConflictException.
_NOT_DELETABLE = frozenset({"Creating", "Updating"})


class BedrockError(JsonRESTError):
    """A Bedrock error response: the botocore error code, its HTTP status and a message."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.code = status


def _not_found(what: str, identifier: str) -> BedrockError:
    return BedrockError("ResourceNotFoundException", f"{what} {identifier} could not be found.", 404)


def _validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message, 400)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _resource_id(*parts: str) -> str:
    """12 lowercase alphanumerics, deterministic: Bedrock's id shape in ARNs."""
    digest = hashlib.sha256("\n".join(parts).encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:12])


# ---------------------------------------------------------------------------- scenario settings
@dataclass
class _Settings:
    scenario: Scenario = field(default_factory=lambda: SCENARIOS["ok"])
    throttles_left: int = 0
    deployment_refusals_left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The emulation's job clock (``finetune.local.jobs.JobTimer``) while installed: jobs then run for
    #: the scenario's ``job_hours`` of emulated time, whoever describes them, and each status change
    #: is reported to it (it sends Bedrock's state-change event). None: a job advances per describe.
    job_timer: Any = None


_settings = _Settings()


def current_scenario() -> Scenario:
    """The scenario the emulated services follow now."""
    return _settings.scenario


def configure(scenario: Scenario) -> None:
    """Make the emulated Bedrock behave as ``scenario`` from now on."""
    _settings.scenario = scenario
    _settings.throttles_left = scenario.throttled_calls
    _settings.deployment_refusals_left = scenario.deployment_quota_refusals
    transition = {"progression": "manual", "times": scenario.polls_per_status}
    state_manager.register_default_transition(JOB_MODEL, transition)
    throughput_polls = scenario.throughput_polls_per_status or scenario.polls_per_status
    state_manager.register_default_transition(
        THROUGHPUT_MODEL, {"progression": "manual", "times": throughput_polls}
    )
    state_manager.register_default_transition(
        DEPLOYMENT_MODEL, {"progression": "manual", "times": scenario.polls_per_status}
    )


def _check_job_quota(state: BedrockState, job_name: str) -> None:
    """The scenario's quota of concurrent jobs: a job counts until it has ended (Stopping included)."""
    quota = _settings.scenario.job_quota
    if quota is None or sum(1 for job in state.jobs.values() if not job.ended) < quota:
        return
    state.quota_refusals.append((_now(), job_name))
    raise BedrockError(
        "ServiceQuotaExceededException",
        f"The number of concurrent model customization jobs in this account would exceed its quota of "
        f"{quota} (emulated, scenario {_settings.scenario.name}).",
        400,
    )


def _check_deployment_quota(state: BedrockState, name: str) -> None:
    """The scenario's full deployment quota: refuse the first CreateCustomModelDeployment calls."""
    with _settings.lock:
        if _settings.deployment_refusals_left <= 0:
            return
        _settings.deployment_refusals_left -= 1
    state.deployment_quota_refusals.append((_now(), name))
    raise BedrockError(
        "ServiceQuotaExceededException",
        "The number of custom model deployments in this account would exceed its quota (emulated, "
        f"scenario {_settings.scenario.name}).",
        400,
    )


def _maybe_throttle(operation: str) -> None:
    """Answer as the scenario says: throttle the first calls, fail the operations it names."""
    for failing, code, message, status in _settings.scenario.errors:
        if failing == operation:
            raise BedrockError(code, message, status)
    with _settings.lock:
        if _settings.throttles_left <= 0:
            return
        _settings.throttles_left -= 1
    raise BedrockError("ThrottlingException", f"Rate exceeded for {operation} (emulated throttling).", 429)


# ---------------------------------------------------------------------------------------- models
class EmulatedJob(ManagedState):
    """A model customization job whose status advances each time it is described."""

    def __init__(self, params: dict[str, Any], account: str, region: str, scenario: Scenario) -> None:
        super().__init__(JOB_MODEL, list(scenario.job_transitions))
        self.params = params
        self.account, self.region = account, region
        self.scenario = scenario
        base = params["baseModelIdentifier"].rsplit("/", 1)[-1]
        self.base_model_id = base
        job_id = _resource_id("job", params["jobName"], params.get("clientRequestToken") or "")
        self.job_id = job_id
        self.job_arn = f"arn:aws:bedrock:{region}:{account}:model-customization-job/{base}/{job_id}"
        self.model_arn = (
            f"arn:aws:bedrock:{region}:{account}:custom-model/{base}/"
            f"{_resource_id('model', params['customModelName'], job_id)}"
        )
        self.creation_time = _now()
        self.last_modified_time = self.creation_time
        self.end_time: datetime | None = None
        self.failure_message = ""
        self.training_loss: float | None = None
        self.validation_loss: float | None = None
        self._finished = False
        self._reported = "InProgress"
        #: Whether a job timer runs this job (its status then changes with emulated time only).
        self.timed = False

    @property
    def reported_status(self) -> str:
        """The status the last describe answered (what List and the summary show; no poll)."""
        return self._reported

    @property
    def ended(self) -> bool:
        """Whether the job has ended (Completed, Failed or Stopped); ``end_time`` says when."""
        return self._finished

    def describe(self, backend_state: BedrockState) -> dict[str, Any]:
        """GetModelCustomizationJob: report the status (untimed: advance it by one poll first)."""
        if not self.timed or self._reported == "Stopping":
            self.advance()
            self.set_status(self.status or "InProgress", backend_state)
        return self.to_dict()

    def set_status(self, status: str, backend_state: BedrockState) -> None:
        """Move to ``status`` (by a describe, or by the job timer when its time comes); an ended job
        keeps its end status."""
        with _settings.lock:
            if self._finished or status == self._reported:
                return
            self._reported = status
            self.status = status
            self.last_modified_time = _now()
            if status in ("Completed", "Failed", "Stopped"):
                self._finish(status, backend_state)
        timer = _settings.job_timer
        if timer is not None and self.timed:
            timer.status_changed(self)

    def train_on(self) -> None:
        """Off the job clock, for tests: the job stays InProgress until it is stopped."""
        self.timed = False
        self._transitions = [("InProgress", "InProgress")]

    def stop(self) -> None:
        """StopModelCustomizationJob: Stopping now, Stopped on the next poll (or, timed, a minute of
        emulated time later)."""
        self._transitions = [("Stopping", "Stopped")]
        self.status = "Stopping"
        self._reported = "Stopping"
        self._tick = max(self._tick, 10**6)  # the next describe moves on to Stopped
        self.last_modified_time = _now()
        timer = _settings.job_timer
        if timer is not None and self.timed:
            timer.stopping(self)

    def _finish(self, status: str, backend_state: BedrockState) -> None:
        self._finished = True
        self.end_time = _now()
        self.last_modified_time = self.end_time
        if status == "Failed":
            self.failure_message = self.scenario.job_failure_message or "Emulated job failure."
        elif status == "Completed":
            metrics = write_metrics(self)
            self.training_loss = metrics.final_training_loss
            self.validation_loss = metrics.final_validation_loss
            backend_state.custom_models[self.model_arn] = self
            backend_state.tags[self.model_arn] = _tag_dict(self.params.get("customModelTags") or [])

    @property
    def hyperparameters(self) -> dict[str, str]:
        return dict(self.params.get("hyperParameters") or {})

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        out: dict[str, Any] = {
            "jobArn": self.job_arn,
            "jobName": p["jobName"],
            "outputModelName": p["customModelName"],
            "roleArn": p["roleArn"],
            "clientRequestToken": p.get("clientRequestToken"),
            "status": self._reported,
            "creationTime": _iso(self.creation_time),
            "lastModifiedTime": _iso(self.last_modified_time),
            "baseModelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{self.base_model_id}",
            "hyperParameters": self.hyperparameters,
            "trainingDataConfig": p["trainingDataConfig"],
            "validationDataConfig": p.get("validationDataConfig") or {"validators": []},
            "outputDataConfig": p["outputDataConfig"],
            "customizationType": p.get("customizationType") or "FINE_TUNING",
        }
        if p.get("customModelKmsKeyId"):
            out["outputModelKmsKeyArn"] = p["customModelKmsKeyId"]
        if self._reported == "Completed":
            out["outputModelArn"] = self.model_arn
            out["trainingMetrics"] = {"trainingLoss": self.training_loss}
            if self.validation_loss is not None:
                out["validationMetrics"] = [{"validationLoss": self.validation_loss}]
        if self.failure_message:
            out["failureMessage"] = self.failure_message
        if self.end_time:
            out["endTime"] = _iso(self.end_time)
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict[str, Any]:
        out = {
            "jobArn": self.job_arn,
            "baseModelArn": f"arn:aws:bedrock:{self.region}::foundation-model/{self.base_model_id}",
            "jobName": self.params["jobName"],
            "status": self._reported,
            "lastModifiedTime": _iso(self.last_modified_time),
            "creationTime": _iso(self.creation_time),
            "endTime": _iso(self.end_time),
            "customModelName": self.params["customModelName"],
            "customizationType": self.params.get("customizationType") or "FINE_TUNING",
        }
        if self._reported == "Completed":
            out["customModelArn"] = self.model_arn
        return {k: v for k, v in out.items() if v is not None}


class EmulatedThroughput(ManagedState):
    """A Provisioned Throughput whose status advances each time it is described."""

    def __init__(
        self, params: dict[str, Any], model: EmulatedJob, account: str, region: str, scenario: Scenario
    ) -> None:
        super().__init__(THROUGHPUT_MODEL, list(scenario.throughput_transitions))
        self.params = params
        self.model = model
        self.scenario = scenario
        pt_id = _resource_id("pt", params["provisionedModelName"], params.get("clientRequestToken") or "")
        self.arn = f"arn:aws:bedrock:{region}:{account}:provisioned-model/{pt_id}"
        self.creation_time = _now()
        self.last_modified_time = self.creation_time
        self.failure_message = ""
        self._reported = "Creating"
        #: A model swap in progress: the model it goes to and the describes it still lasts.
        self.desired_model: EmulatedJob | None = None
        self.update_polls_left = 0

    @property
    def reported_status(self) -> str:
        """The status the last describe answered (what List and the summary show; no poll)."""
        return self._reported

    def update(self, model: EmulatedJob) -> None:
        """UpdateProvisionedModelThroughput: Updating for a few describes, then the new model serves."""
        self.desired_model = model
        self.update_polls_left = UPDATE_POLLS
        self._reported = "Updating"
        self.last_modified_time = _now()

    def describe(self) -> dict[str, Any]:
        if self.desired_model is not None:
            self.update_polls_left -= 1
            if self.update_polls_left <= 0:
                self.model, self.desired_model = self.desired_model, None
                self._reported = "InService"
                self.last_modified_time = _now()
            return self.to_dict()
        self.advance()
        status = self.status or "Creating"
        if status != self._reported:
            self._reported = status
            self.last_modified_time = _now()
            if status == "Failed":
                self.failure_message = self.scenario.throughput_failure_message or "Emulated failure."
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        commitment = self.params.get("commitmentDuration")
        out: dict[str, Any] = {
            "modelUnits": self.params["modelUnits"],
            "desiredModelUnits": self.params["modelUnits"],
            "provisionedModelName": self.params["provisionedModelName"],
            "provisionedModelArn": self.arn,
            "modelArn": self.model.model_arn,
            "desiredModelArn": (self.desired_model or self.model).model_arn,
            "foundationModelArn": (
                f"arn:aws:bedrock:{self.model.region}::foundation-model/{self.model.base_model_id}"
            ),
            "status": self._reported,
            "creationTime": _iso(self.creation_time),
            "lastModifiedTime": _iso(self.last_modified_time),
        }
        if self.failure_message:
            out["failureMessage"] = self.failure_message
        if commitment:
            months = 1 if commitment == "OneMonth" else 6
            out["commitmentDuration"] = commitment
            out["commitmentExpirationTime"] = _iso(self.creation_time + timedelta(days=30 * months))
        return out


class EmulatedDeployment(ManagedState):
    """A custom model deployment (on-demand serving) whose status advances each time it is described."""

    def __init__(
        self, params: dict[str, Any], model: EmulatedJob, account: str, region: str, scenario: Scenario
    ) -> None:
        super().__init__(DEPLOYMENT_MODEL, list(scenario.deployment_transitions))
        self.params = params
        self.model = model
        self.scenario = scenario
        dep_id = _resource_id(
            "deployment", params["modelDeploymentName"], params.get("clientRequestToken") or ""
        )
        self.arn = f"arn:aws:bedrock:{region}:{account}:custom-model-deployment/{dep_id}"
        self.created_at = _now()
        self.last_updated_at = self.created_at
        self.failure_message = ""
        self._reported = "Creating"
        self.desired_model: EmulatedJob | None = None
        self.update_polls_left = 0
        self.update_status = ""

    @property
    def reported_status(self) -> str:
        return self._reported

    def update(self, model: EmulatedJob) -> None:
        self.desired_model = model
        self.update_polls_left = UPDATE_POLLS
        self.update_status = "Updating"
        self.last_updated_at = _now()

    def describe(self) -> dict[str, Any]:
        if self.desired_model is not None:
            self.update_polls_left -= 1
            if self.update_polls_left <= 0:
                self.model, self.desired_model = self.desired_model, None
                self.update_status = "UpdateCompleted"
                self.last_updated_at = _now()
            return self.to_dict()
        self.advance()
        status = self.status or "Creating"
        if status != self._reported:
            self._reported = status
            self.last_updated_at = _now()
            if status == "Failed":
                self.failure_message = self.scenario.deployment_failure_message or "Emulated failure."
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "customModelDeploymentArn": self.arn,
            "modelDeploymentName": self.params["modelDeploymentName"],
            "modelArn": self.model.model_arn,
            "createdAt": _iso(self.created_at),
            "lastUpdatedAt": _iso(self.last_updated_at),
            "status": self._reported,
        }
        if self.params.get("description"):
            out["description"] = self.params["description"]
        if self.update_status:
            out["updateDetails"] = {
                "modelArn": (self.desired_model or self.model).model_arn,
                "updateStatus": self.update_status,
            }
        if self.failure_message:
            out["failureMessage"] = self.failure_message
        return out


@dataclass
class BedrockState:
    """Everything the emulated Bedrock holds for one account and region."""

    jobs: dict[str, EmulatedJob] = field(default_factory=dict)
    custom_models: dict[str, EmulatedJob] = field(default_factory=dict)
    throughputs: dict[str, EmulatedThroughput] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Throughputs deleted so far, by ARN (no longer answered by any operation).
    deleted_throughputs: dict[str, EmulatedThroughput] = field(default_factory=dict)
    deployments: dict[str, EmulatedDeployment] = field(default_factory=dict)
    deleted_deployments: dict[str, EmulatedDeployment] = field(default_factory=dict)
    #: Every model swap asked for: (endpoint ARN, model ARN), in order.
    updates: list[tuple[str, str]] = field(default_factory=list)
    #: CreateModelCustomizationJob calls refused for the concurrent-jobs quota: (when, job name).
    quota_refusals: list[tuple[datetime, str]] = field(default_factory=list)
    #: CreateCustomModelDeployment calls refused for the deployments quota: (when, deployment name).
    deployment_quota_refusals: list[tuple[datetime, str]] = field(default_factory=list)

    def deployment(self, identifier: str) -> EmulatedDeployment:
        for deployment in self.deployments.values():
            if identifier in (deployment.arn, deployment.params["modelDeploymentName"]):
                return deployment
        raise _not_found("Custom model deployment", identifier)

    def job(self, identifier: str) -> EmulatedJob:
        for job in self.jobs.values():
            if identifier in (job.job_arn, job.params["jobName"]):
                return job
        raise _not_found("Model customization job", identifier)

    def custom_model(self, identifier: str) -> EmulatedJob:
        for job in self.custom_models.values():
            if identifier in (job.model_arn, job.params["customModelName"]):
                return job
        raise _not_found("Custom model", identifier)

    def throughput(self, identifier: str) -> EmulatedThroughput:
        for pt in self.throughputs.values():
            if identifier in (pt.arn, pt.params["provisionedModelName"]):
                return pt
        raise _not_found("Provisioned model", identifier)


def state_for(account: str, region: str) -> BedrockState:
    """The emulated Bedrock of one account and region (reset with moto's backends)."""
    backend = bedrock_backends[account][region]
    state = backend.__dict__.get("_finetune_local")
    if state is None:
        state = BedrockState()
        backend.__dict__["_finetune_local"] = state
    return state


def _tag_dict(tags: list[dict[str, str]]) -> dict[str, str]:
    if len(tags) > 200:
        raise BedrockError("TooManyTagsException", "Member must have length less than or equal to 200")
    for tag in tags:
        key, value = tag.get("key", ""), tag.get("value", "")
        if not (1 <= len(key) <= 128) or len(value) > 256 or not _TAG_TEXT.match(key + value):
            raise _validation(f"Tag {tag!r} does not satisfy the tag key/value constraints.")
    return {t["key"]: t["value"] for t in tags}


# ----------------------------------------------------------------------------------- the metrics
@dataclass(frozen=True)
class Metrics:
    final_training_loss: float
    final_validation_loss: float | None
    training_key: str
    validation_key: str | None


def _s3_split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _read_records(account: str, uri: str) -> list[str]:
    bucket, key = _s3_split(uri)
    obj = s3_backends[account]["aws"].get_object(bucket, key)
    if obj is None:
        return []
    return [line for line in obj.value.decode("utf-8", "replace").splitlines() if line.strip()]


def _mean_length(records: list[str]) -> float:
    return sum(len(r) for r in records) / len(records) if records else 0.0


def _loss_curve(records: list[str], hyper: dict[str, str]) -> list[tuple[int, int, float]]:
    """(step, epoch, training loss) for each step of a deterministic, data-derived curve.

    Longer records start higher; more records reach a lower floor; each step's loss moves with
    the relative length of the records in its batch, so the curve is not a smooth constant-shape
    line but the same data always gives the same numbers.
    """
    batch = max(1, int(float(hyper.get("batchSize", "32"))))
    epochs = max(1, int(float(hyper.get("epochCount", "2"))))
    lr = float(hyper.get("learningRateMultiplier", "1"))
    lengths = [len(r) for r in records] or [1]
    mean = sum(lengths) / len(lengths)
    start = 2.2 + 0.35 * math.log1p(mean / 400)
    floor = 0.25 + 0.6 / math.sqrt(max(1.0, len(lengths) / 32))
    per_epoch = max(1, math.ceil(len(lengths) / batch))
    total = per_epoch * epochs
    rows = []
    for step in range(total):
        epoch, index = divmod(step, per_epoch)
        chunk = lengths[index * batch : (index + 1) * batch] or lengths
        batch_factor = min(1.25, max(0.8, (sum(chunk) / len(chunk)) / mean))
        progress = (step + 1) / total
        loss = floor + (start - floor) * math.exp(-3.0 * lr * progress * epochs / 2)
        rows.append((step, epoch, round(loss * (0.88 + 0.12 * batch_factor), 6)))
    return rows


def _csv(rows: list[tuple[int, int, float]], loss_column: str) -> bytes:
    lines = [f"step_number,epoch_number,{loss_column},perplexity"]
    lines += [f"{s},{e},{loss:.6f},{math.exp(loss):.6f}" for s, e, loss in rows]
    return ("\n".join(lines) + "\n").encode()


def write_metrics(job: EmulatedJob) -> Metrics:
    """Write the job's metrics CSVs where Bedrock does (bedrock-facts.md §2) and return the finals."""
    hyper = job.hyperparameters
    training = _loss_curve(_read_records(job.account, job.params["trainingDataConfig"]["s3Uri"]), hyper)
    out_bucket, out_prefix = _s3_split(job.params["outputDataConfig"]["s3Uri"])
    base = f"{out_prefix.rstrip('/')}/" if out_prefix else ""
    root = f"{base}model-customization-job-{job.job_id}/"
    s3 = s3_backends[job.account]["aws"]
    training_key = f"{root}training_artifacts/step_wise_training_metrics.csv"
    s3.put_object(out_bucket, training_key, _csv(training, "training_loss"))
    validators = (job.params.get("validationDataConfig") or {}).get("validators") or []
    validation_key = None
    final_validation = None
    if validators:
        records = _read_records(job.account, validators[0]["s3Uri"])
        train_records = _read_records(job.account, job.params["trainingDataConfig"]["s3Uri"])
        # Held-out data sits a little above training loss; more so when its records are longer.
        ratio = _mean_length(records) / max(1.0, _mean_length(train_records))
        gap = 1.03 + 0.07 * min(2.0, max(0.5, ratio))
        epochs = training[-1][1] + 1
        per_epoch = len(training) // epochs
        rows = []
        for epoch in range(epochs):
            step = (epoch + 1) * per_epoch - 1
            rows.append((step, epoch, round(training[step][2] * gap, 6)))
        validation_key = f"{root}validation_artifacts/post_fine_tuning_validation/validation_metrics.csv"
        s3.put_object(out_bucket, validation_key, _csv(rows, "validation_loss"))
        final_validation = rows[-1][2]
    return Metrics(training[-1][2], final_validation, training_key, validation_key)


# ------------------------------------------------------------------------------- the operations
def _ctx(resp: BedrockResponse) -> tuple[BedrockState, str, str]:
    return state_for(resp.current_account, resp.region), resp.current_account, resp.region


def _body(resp: BedrockResponse) -> dict[str, Any]:
    return json.loads(resp.body or "{}")


def _path_param(resp: BedrockResponse, name: str, after: str) -> str:
    value = (getattr(resp, "uri_match", None) or {}).get(name)
    if not value:
        value = resp.path.split(after, 1)[1].split("?")[0]
        value = value.removesuffix("/stop")
    return unquote(unquote(value))


def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    return status, {"content-type": "application/json"}, json.dumps(payload, default=str)


def _require(params: dict[str, Any], *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise _validation(
                f"1 validation error detected: Value null at '{name}' failed to satisfy "
                "constraint: Member must not be null"
            )


def create_model_customization_job(self: BedrockResponse) -> Any:
    _maybe_throttle("CreateModelCustomizationJob")
    state, account, region = _ctx(self)
    p = _body(self)
    _require(
        p,
        "jobName",
        "customModelName",
        "roleArn",
        "baseModelIdentifier",
        "trainingDataConfig",
        "outputDataConfig",
    )
    if not (len(p["jobName"]) <= 63 and _JOB_NAME.match(p["jobName"])):
        raise _validation(f"Value '{p['jobName']}' at 'jobName' failed to satisfy constraint.")
    if not _MODEL_NAME.match(p["customModelName"]):
        raise _validation(
            f"Value '{p['customModelName']}' at 'customModelName' failed to satisfy constraint."
        )
    if not _ROLE_ARN.match(p["roleArn"]):
        raise _validation(f"Value '{p['roleArn']}' at 'roleArn' failed to satisfy constraint.")
    token = p.get("clientRequestToken")
    if token is not None and not _TOKEN.match(token):
        raise _validation(f"Value '{token}' at 'clientRequestToken' failed to satisfy constraint.")
    uris = [p["trainingDataConfig"].get("s3Uri", ""), p["outputDataConfig"].get("s3Uri", "")]
    uris += [v.get("s3Uri", "") for v in (p.get("validationDataConfig") or {}).get("validators", [])]
    for uri in uris:
        if not _S3_URI.match(uri):
            raise _validation(f"Value '{uri}' failed to satisfy constraint: not an S3 URI.")
    for job in state.jobs.values():
        if token and job.params.get("clientRequestToken") == token:
            return _json(201, {"jobArn": job.job_arn})  # idempotent retry: same job
        if job.params["jobName"] == p["jobName"]:
            raise BedrockError("ValidationException", f"A job named {p['jobName']} already exists.", 400)
        if job.params["customModelName"] == p["customModelName"]:
            raise BedrockError("ValidationException", f"A model named {p['customModelName']} already exists.")
    _check_job_quota(state, p["jobName"])
    tags = _tag_dict(p.get("jobTags") or [])
    _tag_dict(p.get("customModelTags") or [])
    job = EmulatedJob(p, account, region, _settings.scenario)
    state.jobs[job.job_arn] = job
    state.tags[job.job_arn] = tags
    if _settings.job_timer is not None:
        job.timed = True
        _settings.job_timer.started(job)
    return _json(201, {"jobArn": job.job_arn})


def get_model_customization_job(self: BedrockResponse) -> Any:
    _maybe_throttle("GetModelCustomizationJob")
    state, _, _ = _ctx(self)
    job = state.job(_path_param(self, "jobIdentifier", "/model-customization-jobs/"))
    return _json(200, job.describe(state))


def stop_model_customization_job(self: BedrockResponse) -> Any:
    _maybe_throttle("StopModelCustomizationJob")
    state, _, _ = _ctx(self)
    job = state.job(_path_param(self, "jobIdentifier", "/model-customization-jobs/"))
    if job._reported not in ("InProgress",):
        raise BedrockError(
            "ConflictException", f"Job {job.job_arn} is {job._reported}; it cannot be stopped."
        )
    job.stop()
    return _json(200, {})


def list_model_customization_jobs(self: BedrockResponse) -> Any:
    _maybe_throttle("ListModelCustomizationJobs")
    state, _, _ = _ctx(self)
    params = self._get_params()
    jobs = list(state.jobs.values())
    if params.get("statusEquals"):
        jobs = [j for j in jobs if j._reported == params["statusEquals"]]
    if params.get("nameContains"):
        jobs = [j for j in jobs if params["nameContains"] in j.params["jobName"]]
    return _json(200, {"modelCustomizationJobSummaries": [j.summary() for j in jobs]})


def get_custom_model(self: BedrockResponse) -> Any:
    _maybe_throttle("GetCustomModel")
    state, _, _ = _ctx(self)
    job = state.custom_model(_path_param(self, "modelIdentifier", "/custom-models/"))
    out = {
        "modelArn": job.model_arn,
        "modelName": job.params["customModelName"],
        "jobName": job.params["jobName"],
        "jobArn": job.job_arn,
        "baseModelArn": f"arn:aws:bedrock:{job.region}::foundation-model/{job.base_model_id}",
        "customizationType": "FINE_TUNING",
        "hyperParameters": job.hyperparameters,
        "trainingDataConfig": job.params["trainingDataConfig"],
        "outputDataConfig": job.params["outputDataConfig"],
        "trainingMetrics": {"trainingLoss": job.training_loss},
        "creationTime": _iso(job.end_time),
        "modelStatus": "Active",
    }
    return _json(200, out)


def create_provisioned_model_throughput(self: BedrockResponse) -> Any:
    _maybe_throttle("CreateProvisionedModelThroughput")
    state, account, region = _ctx(self)
    p = _body(self)
    _require(p, "modelUnits", "provisionedModelName", "modelId")
    if not isinstance(p["modelUnits"], int) or p["modelUnits"] < 1:
        raise _validation("Value at 'modelUnits' failed to satisfy constraint: Member must be at least 1")
    if not (len(p["provisionedModelName"]) <= 63 and _MODEL_NAME.match(p["provisionedModelName"])):
        raise _validation(
            f"Value '{p['provisionedModelName']}' at 'provisionedModelName' failed to satisfy constraint."
        )
    if p.get("commitmentDuration") not in (None, *_COMMITMENTS):
        raise _validation(
            f"Value '{p['commitmentDuration']}' at 'commitmentDuration' failed to satisfy "
            f"constraint: Member must satisfy enum value set: {list(_COMMITMENTS)}"
        )
    token = p.get("clientRequestToken")
    for pt in state.throughputs.values():
        if token and pt.params.get("clientRequestToken") == token:
            return _json(201, {"provisionedModelArn": pt.arn})
        if pt.params["provisionedModelName"] == p["provisionedModelName"]:
            raise _validation(f"A provisioned model named {p['provisionedModelName']} already exists.")
    model = state.custom_model(p["modelId"])
    tags = _tag_dict(p.get("tags") or [])
    pt = EmulatedThroughput(p, model, account, region, _settings.scenario)
    state.throughputs[pt.arn] = pt
    state.tags[pt.arn] = tags
    return _json(201, {"provisionedModelArn": pt.arn})


def get_provisioned_model_throughput(self: BedrockResponse) -> Any:
    _maybe_throttle("GetProvisionedModelThroughput")
    state, _, _ = _ctx(self)
    pt = state.throughput(_path_param(self, "provisionedModelId", "/provisioned-model-throughput/"))
    return _json(200, pt.describe())


def delete_provisioned_model_throughput(self: BedrockResponse) -> Any:
    _maybe_throttle("DeleteProvisionedModelThroughput")
    state, _, _ = _ctx(self)
    pt = state.throughput(_path_param(self, "provisionedModelId", "/provisioned-model-throughput/"))
    if pt._reported in _NOT_DELETABLE:
        # Bedrock refuses while the throughput is being created or updated (HTTP 400); the status
        # is the last one reported: only a describe (a poll) moves it on.
        raise BedrockError(
            "ConflictException",
            f"Provisioned model throughput {pt.arn} is {pt._reported}; it can be deleted once it is "
            "InService or Failed (emulated).",
        )
    if pt.params.get("commitmentDuration"):
        raise BedrockError(
            "ConflictException",
            "You can't delete a Provisioned Throughput before the commitment term is over.",
        )
    state.deleted_throughputs[pt.arn] = state.throughputs.pop(pt.arn)
    state.tags.pop(pt.arn, None)
    return _json(200, {})


def list_provisioned_model_throughputs(self: BedrockResponse) -> Any:
    _maybe_throttle("ListProvisionedModelThroughputs")
    state, _, _ = _ctx(self)
    params = self._get_params()
    summaries = []
    for pt in state.throughputs.values():
        item = pt.to_dict()
        if params.get("statusEquals") and item["status"] != params["statusEquals"]:
            continue
        if params.get("nameContains") and params["nameContains"] not in item["provisionedModelName"]:
            continue
        item.pop("failureMessage", None)
        summaries.append(item)
    return _json(200, {"provisionedModelSummaries": summaries})


def update_provisioned_model_throughput(self: BedrockResponse) -> Any:
    _maybe_throttle("UpdateProvisionedModelThroughput")
    state, _, _ = _ctx(self)
    pt = state.throughput(_path_param(self, "provisionedModelId", "/provisioned-model-throughput/"))
    p = _body(self)
    if pt._reported != "InService":
        raise BedrockError("ConflictException", f"Provisioned model throughput {pt.arn} is {pt._reported}.")
    if p.get("desiredModelId"):
        model = state.custom_model(p["desiredModelId"])
        if model.base_model_id != pt.model.base_model_id:
            raise _validation("The desired model must be customized from the same base model.")
        pt.update(model)
        state.updates.append((pt.arn, model.model_arn))
    if p.get("desiredProvisionedModelName"):
        pt.params["provisionedModelName"] = p["desiredProvisionedModelName"]
    return _json(200, {})


def create_custom_model_deployment(self: BedrockResponse) -> Any:
    _maybe_throttle("CreateCustomModelDeployment")
    state, account, region = _ctx(self)
    p = _body(self)
    _require(p, "modelDeploymentName", "modelArn")
    if not (len(p["modelDeploymentName"]) <= 63 and _MODEL_NAME.match(p["modelDeploymentName"])):
        raise _validation(
            f"Value '{p['modelDeploymentName']}' at 'modelDeploymentName' failed to satisfy constraint."
        )
    token = p.get("clientRequestToken")
    for deployment in state.deployments.values():
        if token and deployment.params.get("clientRequestToken") == token:
            return _json(202, {"customModelDeploymentArn": deployment.arn})
        if deployment.params["modelDeploymentName"] == p["modelDeploymentName"]:
            raise BedrockError(
                "ConflictException", f"A deployment named {p['modelDeploymentName']} already exists.", 409
            )
    _check_deployment_quota(state, p["modelDeploymentName"])
    model = state.custom_model(p["modelArn"])
    spec = BUILTIN_MODELS.get(model.base_model_id)
    if spec is not None and "on_demand" not in spec.serving_modes:
        raise _validation(
            f"On-demand deployment is not supported for models customized from {model.base_model_id}."
        )
    tags = _tag_dict(p.get("tags") or [])
    deployment = EmulatedDeployment(p, model, account, region, _settings.scenario)
    state.deployments[deployment.arn] = deployment
    state.tags[deployment.arn] = tags
    return _json(202, {"customModelDeploymentArn": deployment.arn})


def _deployment_param(resp: BedrockResponse) -> str:
    return _path_param(
        resp, "customModelDeploymentIdentifier", "/model-customization/custom-model-deployments/"
    )


def get_custom_model_deployment(self: BedrockResponse) -> Any:
    _maybe_throttle("GetCustomModelDeployment")
    state, _, _ = _ctx(self)
    return _json(200, state.deployment(_deployment_param(self)).describe())


def update_custom_model_deployment(self: BedrockResponse) -> Any:
    _maybe_throttle("UpdateCustomModelDeployment")
    state, _, _ = _ctx(self)
    deployment = state.deployment(_deployment_param(self))
    p = _body(self)
    if deployment._reported != "Active" or deployment.desired_model is not None:
        raise BedrockError(
            "ConflictException", f"Deployment {deployment.arn} is {deployment._reported}; try later.", 409
        )
    model = state.custom_model(p["modelArn"])
    deployment.update(model)
    state.updates.append((deployment.arn, model.model_arn))
    return _json(202, {"customModelDeploymentArn": deployment.arn})


def delete_custom_model_deployment(self: BedrockResponse) -> Any:
    _maybe_throttle("DeleteCustomModelDeployment")
    state, _, _ = _ctx(self)
    deployment = state.deployment(_deployment_param(self))
    if deployment._reported == "Creating":
        raise BedrockError("ConflictException", f"Deployment {deployment.arn} is Creating (emulated).", 409)
    state.deleted_deployments[deployment.arn] = state.deployments.pop(deployment.arn)
    state.tags.pop(deployment.arn, None)
    return _json(200, {})


def list_custom_model_deployments(self: BedrockResponse) -> Any:
    _maybe_throttle("ListCustomModelDeployments")
    state, _, _ = _ctx(self)
    params = self._get_params()
    summaries = []
    for deployment in state.deployments.values():
        item = deployment.to_dict()
        if params.get("statusEquals") and item["status"] != params["statusEquals"]:
            continue
        if params.get("nameContains") and params["nameContains"] not in item["modelDeploymentName"]:
            continue
        summaries.append(
            {
                k: item[k]
                for k in (
                    "customModelDeploymentArn",
                    "modelDeploymentName",
                    "modelArn",
                    "createdAt",
                    "status",
                )
            }
        )
    return _json(200, {"modelDeploymentSummaries": summaries})


def list_tags_for_resource(self: BedrockResponse) -> Any:
    _maybe_throttle("ListTagsForResource")
    state, _, _ = _ctx(self)
    arn = _body(self).get("resourceARN", "")
    if arn not in state.tags:
        raise _not_found("Resource", arn)
    return _json(200, {"tags": [{"key": k, "value": v} for k, v in state.tags[arn].items()]})


def tag_resource(self: BedrockResponse) -> Any:
    _maybe_throttle("TagResource")
    state, _, _ = _ctx(self)
    body = _body(self)
    arn = body.get("resourceARN", "")
    if arn not in state.tags:
        raise _not_found("Resource", arn)
    state.tags[arn].update(_tag_dict(body.get("tags") or []))
    return _json(200, {})


OPERATIONS = {
    f.__name__: f
    for f in (
        create_model_customization_job,
        get_model_customization_job,
        stop_model_customization_job,
        list_model_customization_jobs,
        get_custom_model,
        create_provisioned_model_throughput,
        get_provisioned_model_throughput,
        delete_provisioned_model_throughput,
        list_provisioned_model_throughputs,
        update_provisioned_model_throughput,
        create_custom_model_deployment,
        get_custom_model_deployment,
        update_custom_model_deployment,
        delete_custom_model_deployment,
        list_custom_model_deployments,
        list_tags_for_resource,
        tag_resource,
    )
}


@contextlib.contextmanager
def timed_jobs(timer: Any) -> Iterator[None]:
    """Jobs created meanwhile run on ``timer`` (``finetune.local.jobs.JobTimer``): their status changes
    with emulated time, and each change is reported to it."""
    _settings.job_timer = timer
    try:
        yield
    finally:
        _settings.job_timer = None


def job_state_change_event(job: EmulatedJob) -> dict[str, Any]:
    """Bedrock's "Model Customization Job State Change" event for ``job``'s current status (shape and
    fields from the sample in the Bedrock user guide, "How EventBridge for Amazon Bedrock works")."""
    detail: dict[str, Any] = {
        "version": "0.0",
        "jobName": job.params["jobName"],
        "jobArn": job.job_arn,
        "outputModelName": job.params["customModelName"],
        "outputModelArn": job.model_arn,
        "roleArn": job.params["roleArn"],
        "jobStatus": job.reported_status,
        "creationTime": _iso(job.creation_time),
        "lastModifiedTime": _iso(job.last_modified_time),
        "baseModelArn": f"arn:aws:bedrock:{job.region}::foundation-model/{job.base_model_id}",
        "hyperParameters": job.hyperparameters,
        "trainingDataConfig": job.params["trainingDataConfig"],
        "outputDataConfig": job.params["outputDataConfig"],
    }
    if job.failure_message:
        detail["failureMessage"] = job.failure_message
    if job.end_time:
        detail["endTime"] = _iso(job.end_time)
    return {
        "version": "0",
        "id": _resource_id("event", job.job_arn, job.reported_status),
        "detail-type": "Model Customization Job State Change",
        "source": "aws.bedrock",
        "account": job.account,
        "time": _now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": job.region,
        "resources": [job.job_arn],
        "detail": detail,
    }


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Route the pipeline's Bedrock operations to this emulation while the context is open."""
    with contextlib.ExitStack() as stack:
        for name, fn in OPERATIONS.items():
            stack.enter_context(mock.patch.object(BedrockResponse, name, fn, create=True))
        yield
