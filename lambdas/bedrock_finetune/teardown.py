"""Stack teardown: leave nothing billing after ``cdk destroy``.

Run by the teardown custom resource when the stack is deleted. Everything is found by the
:data:`~bedrock_finetune.lineage.TAG_STACK` tag whose value is the stack ID, so resources of other
stacks (or made by hand) are never touched. :func:`begin` stops the stack's running customization
jobs and asks Bedrock to delete its no-commitment Provisioned Throughputs; :func:`advance` is
called until it reports completion: it re-asks for what is not gone yet and, once no throughput is
left, deletes the stack's custom models when configured. Throughputs with a commitment term cannot
be deleted before the term ends: they are reported, never waited for.

Every step is idempotent: what is already stopped or gone is skipped. Only a real error fails, as
:class:`TeardownFailed`, whose message lists what to delete by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune.lineage import TAG_STACK
from bedrock_finetune.notifications import publish_message
from bedrock_finetune.settings import TeardownProperties

#: Stack statuses during which the teardown resource's Delete means "the stack is going away".
#: Any other status (for example UPDATE_COMPLETE_CLEANUP_IN_PROGRESS after a replacement) is not a
#: stack deletion, and teardown must leave the stack's resources alone.
STACK_DELETING_STATUSES = frozenset({"DELETE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS"})

Outcome = Literal["done", "gone", "busy"]

_GONE = frozenset({"ResourceNotFoundException"})
#: Stop/delete of something that is changing state (a throughput still Creating, a job already
#: Stopping): not an error, the next round tries again.
_BUSY = frozenset({"ConflictException"})


class TeardownFailed(Exception):
    """A real error; the message says what is left and how to delete it by hand."""


@dataclass(frozen=True)
class Throughput:
    """A Provisioned Throughput of this stack."""

    arn: str
    name: str
    status: str
    model_arn: str
    commitment: str | None
    commitment_expires: str | None

    def describe_commitment(self) -> str:
        until = self.commitment_expires or "the end of its term"
        return (
            f"{self.name} ({self.arn}) has a {self.commitment} commitment and cannot be deleted before "
            f"{until}; it keeps billing until then. Delete it after that date: "
            f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {self.arn}"
        )


@dataclass
class TeardownReport:
    """What one teardown round did and found."""

    jobs_stopped: list[str] = field(default_factory=list)
    throughputs_deleting: list[str] = field(default_factory=list)
    throughputs_committed: list[Throughput] = field(default_factory=list)
    deployments_deleting: list[str] = field(default_factory=list)
    custom_models_deleted: list[str] = field(default_factory=list)
    custom_models_kept: list[str] = field(default_factory=list)
    custom_models_busy: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(
            self.jobs_stopped
            or self.throughputs_deleting
            or self.throughputs_committed
            or self.deployments_deleting
        )

    def summary(self) -> str:
        parts = []
        if self.jobs_stopped:
            parts.append(f"stopped {len(self.jobs_stopped)} customization job(s)")
        if self.throughputs_deleting:
            parts.append(f"deleting {len(self.throughputs_deleting)} provisioned throughput(s)")
        if self.throughputs_committed:
            parts.append(
                f"{len(self.throughputs_committed)} provisioned throughput(s) with a commitment term kept "
                "(still billing)"
            )
        if self.deployments_deleting:
            parts.append(f"deleting {len(self.deployments_deleting)} custom model deployment(s)")
        if self.custom_models_deleted:
            parts.append(f"deleted {len(self.custom_models_deleted)} custom model(s)")
        return "; ".join(parts) or "nothing of this stack was left in Bedrock"

    def log_fields(self) -> dict[str, Any]:
        """What to log: the summary, and each resource, committed throughput still billing included."""
        return {
            "summary": self.summary(),
            "jobsStopped": self.jobs_stopped,
            "throughputsDeleting": self.throughputs_deleting,
            "deploymentsDeleting": self.deployments_deleting,
            "committedStillBilling": [pt.describe_commitment() for pt in self.throughputs_committed],
        }


def stack_is_being_deleted(cloudformation: Any, stack_id: str) -> bool:
    """True when the stack itself is being deleted (or its first creation rolled back)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_id).get("Stacks") or []
    except (ClientError, BotoCoreError) as exc:
        raise TeardownFailed(
            f"Could not read the status of stack {stack_id} ({_describe(exc)}), so teardown cannot tell a "
            "stack deletion from a resource replacement. Retry the deletion."
        ) from exc
    return bool(stacks) and stacks[0].get("StackStatus") in STACK_DELETING_STATUSES


def begin(bedrock: Any, stack_tag: str) -> TeardownReport:
    """First round of a stack deletion: stop jobs, ask for throughput deletion, find committed ones."""
    report = TeardownReport()
    report.jobs_stopped = stop_jobs(bedrock, stack_tag)
    deleting, committed = delete_throughputs(bedrock, stack_tag)
    report.throughputs_deleting = deleting
    report.throughputs_committed = committed
    report.deployments_deleting = delete_deployments(bedrock, stack_tag)
    return report


def advance(bedrock: Any, stack_tag: str, *, delete_custom_models: bool) -> tuple[bool, TeardownReport]:
    """One waiting round: ``(complete, report)``. Complete once no deletable throughput is left
    (and, when configured, the stack's custom models are deleted)."""
    report = TeardownReport()
    deleting, committed = delete_throughputs(bedrock, stack_tag)
    report.throughputs_deleting = deleting
    report.throughputs_committed = committed
    report.deployments_deleting = delete_deployments(bedrock, stack_tag)
    if deleting or report.deployments_deleting:
        return False, report
    if delete_custom_models:
        # A committed throughput still serves its custom model: that model cannot go yet.
        in_use = {t.model_arn for t in committed}
        deleted, kept, busy = delete_custom_models_of_stack(bedrock, stack_tag, keep=in_use)
        report.custom_models_deleted = deleted
        report.custom_models_kept = kept
        report.custom_models_busy = busy
        if busy:
            return False, report
    return True, report


def stop_jobs(bedrock: Any, stack_tag: str) -> list[str]:
    """Stop this stack's InProgress customization jobs; returns their ARNs."""
    stopped: list[str] = []
    jobs = _paginate(
        bedrock.list_model_customization_jobs,
        "modelCustomizationJobSummaries",
        "ListModelCustomizationJobs",
        stack_tag,
        statusEquals="InProgress",
    )
    for job in jobs:
        if not _tagged_with_stack(bedrock, job["jobArn"], stack_tag):
            continue
        # By name: the API accepts the name or the ARN, and the name needs no URL encoding.
        outcome = _tolerant(
            "StopModelCustomizationJob",
            partial(bedrock.stop_model_customization_job, jobIdentifier=job["jobName"]),
            f"aws bedrock stop-model-customization-job --job-identifier {job['jobArn']}",
        )
        if outcome == "done":
            stopped.append(job["jobArn"])
    return stopped


def find_throughputs(bedrock: Any, stack_tag: str) -> list[Throughput]:
    """Every Provisioned Throughput tagged with this stack, in any status."""
    found: list[Throughput] = []
    summaries = _paginate(
        bedrock.list_provisioned_model_throughputs,
        "provisionedModelSummaries",
        "ListProvisionedModelThroughputs",
        stack_tag,
    )
    for pt in summaries:
        if not _tagged_with_stack(bedrock, pt["provisionedModelArn"], stack_tag):
            continue
        expires = pt.get("commitmentExpirationTime")
        found.append(
            Throughput(
                arn=pt["provisionedModelArn"],
                name=pt.get("provisionedModelName", ""),
                status=pt.get("status", ""),
                model_arn=pt.get("modelArn", ""),
                commitment=pt.get("commitmentDuration") or None,
                commitment_expires=expires.isoformat() if isinstance(expires, datetime) else expires,
            )
        )
    return found


def delete_throughputs(bedrock: Any, stack_tag: str) -> tuple[list[str], list[Throughput]]:
    """Ask Bedrock to delete this stack's no-commitment throughputs.

    Returns ``(still present and being deleted, committed ones that are kept)``.
    """
    deleting: list[str] = []
    committed: list[Throughput] = []
    for pt in find_throughputs(bedrock, stack_tag):
        if pt.commitment:
            committed.append(pt)
            continue
        outcome = _tolerant(
            "DeleteProvisionedModelThroughput",
            partial(bedrock.delete_provisioned_model_throughput, provisionedModelId=pt.arn),
            f"aws bedrock delete-provisioned-model-throughput --provisioned-model-id {pt.arn}",
        )
        # Deletion is asynchronous: it is over once a later listing no longer shows the throughput.
        if outcome != "gone":
            deleting.append(pt.arn)
    return deleting, committed


def delete_deployments(bedrock: Any, stack_tag: str) -> list[str]:
    """Ask Bedrock to delete this stack's custom model deployments (on-demand endpoints); returns
    those still present. One still Creating is asked again next round."""
    deleting: list[str] = []
    summaries = _paginate(
        bedrock.list_custom_model_deployments,
        "modelDeploymentSummaries",
        "ListCustomModelDeployments",
        stack_tag,
    )
    for deployment in summaries:
        arn = deployment["customModelDeploymentArn"]
        if not _tagged_with_stack(bedrock, arn, stack_tag):
            continue
        outcome = _tolerant(
            "DeleteCustomModelDeployment",
            partial(bedrock.delete_custom_model_deployment, customModelDeploymentIdentifier=arn),
            f"aws bedrock delete-custom-model-deployment --custom-model-deployment-identifier {arn}",
        )
        if outcome != "gone":
            deleting.append(arn)
    return deleting


def delete_custom_models_of_stack(
    bedrock: Any, stack_tag: str, *, keep: set[str]
) -> tuple[list[str], list[str], list[str]]:
    """Delete this stack's custom models except those in ``keep``: ``(deleted, kept, busy)``."""
    deleted: list[str] = []
    kept: list[str] = []
    busy: list[str] = []
    models = _paginate(bedrock.list_custom_models, "modelSummaries", "ListCustomModels", stack_tag)
    for model in models:
        arn = model["modelArn"]
        if not _tagged_with_stack(bedrock, arn, stack_tag):
            continue
        if arn in keep:
            kept.append(arn)
            continue
        outcome = _tolerant(
            "DeleteCustomModel",
            partial(bedrock.delete_custom_model, modelIdentifier=model["modelName"]),
            f"aws bedrock delete-custom-model --model-identifier {arn}",
        )
        if outcome == "busy":
            busy.append(arn)
        elif outcome == "done":
            deleted.append(arn)
    return deleted, kept, busy


def report_message(
    report: TeardownReport, stack: str, region: str, *, key_arn: str = "", models_kept: bool = True
) -> tuple[str, str]:
    """Subject and body of the notification sent when the stack is deleted."""
    committed = report.throughputs_committed
    subject = f"[fine-tuning] {stack} deleted" + (": throughput still billing" if committed else "")
    lines = [f"Stack: {stack}", f"Region: {region}", f"Teardown: {report.summary()}"]
    if report.jobs_stopped:
        lines += ["", "Customization jobs stopped:", *(f"- {arn}" for arn in report.jobs_stopped)]
    if report.throughputs_deleting:
        deleted = report.throughputs_deleting
        lines += ["", "Provisioned throughputs deleted:", *(f"- {arn}" for arn in deleted)]
    if committed:
        lines += [
            "",
            "ACTION NEEDED: provisioned throughputs with a commitment term cannot be deleted before the term "
            "ends and keep billing:",
            *(f"- {pt.describe_commitment()}" for pt in committed),
        ]
    kept = ["custom models"] if models_kept else []
    if committed:
        kept.append("the committed throughputs above")
    if kept and key_arn:
        lines += [
            "",
            f"Kept: {' and '.join(kept)}, encrypted with KMS key {key_arn}. The stack keeps that key when "
            "it is deleted (do not schedule its deletion while they exist: they would become unusable).",
        ]
    elif kept:
        lines += ["", f"Kept: {' and '.join(kept)} (delete_custom_models_on_destroy is false)."]
    return subject[:100], "\n".join(lines)


def hand_cleanup_instructions(stack_tag: str, region: str) -> str:
    """How to find by hand what this stack left in Bedrock."""
    return (
        f"List what is left with: aws bedrock list-provisioned-model-throughputs --region {region} (and "
        f"list-model-customization-jobs, list-custom-models); resources of this stack carry the tag "
        f"{TAG_STACK}={stack_tag}."
    )


# ---- helpers ----


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _tolerant(action: str, call: Callable[[], Any], by_hand: str) -> Outcome:
    """Run a stop/delete: "done", "gone" (already gone) or "busy" (changing state; retry later).

    Any other error is real: it raises TeardownFailed with the command to run by hand.
    """
    try:
        call()
    except ClientError as exc:
        if _code(exc) in _GONE:
            return "gone"
        if _code(exc) in _BUSY:
            return "busy"
        raise TeardownFailed(f"{action} failed ({_describe(exc)}). Do it by hand: {by_hand}") from exc
    except BotoCoreError as exc:
        raise TeardownFailed(f"{action} failed ({_describe(exc)}). Do it by hand: {by_hand}") from exc
    return "done"


def _tagged_with_stack(bedrock: Any, arn: str, stack_tag: str) -> bool:
    try:
        tags = bedrock.list_tags_for_resource(resourceARN=arn).get("tags") or []
    except ClientError as exc:
        if _code(exc) in _GONE:
            return False  # deleted between listing and now
        raise TeardownFailed(
            f"ListTagsForResource for {arn} failed ({_describe(exc)}); cannot tell whether it belongs to "
            f"this stack. Check it by hand: it belongs to this stack if tagged {TAG_STACK}={stack_tag}."
        ) from exc
    except BotoCoreError as exc:
        raise TeardownFailed(f"ListTagsForResource for {arn} failed ({_describe(exc)})") from exc
    return any(t.get("key") == TAG_STACK and t.get("value") == stack_tag for t in tags)


def _paginate(
    operation: Callable[..., Any], key: str, action: str, stack_tag: str, **params: Any
) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        call_params = dict(params, **({"nextToken": token} if token else {}))
        try:
            response = operation(**call_params)
        except (ClientError, BotoCoreError) as exc:
            raise TeardownFailed(
                f"{action} failed ({_describe(exc)}), so this stack's Bedrock resources could not be listed. "
                f"Find them by the tag {TAG_STACK}={stack_tag} and delete them by hand."
            ) from exc
        yield from response.get(key) or []
        token = response.get("nextToken")
        if not token:
            return


# ---- the custom resource's two entry points ----


def _by_hand(properties: TeardownProperties) -> str:
    return hand_cleanup_instructions(properties.stack_tag, properties.region)


def stack_name_from_id(stack_id: str) -> str:
    """``arn:...:stack/<name>/<uuid>`` -> ``<name>``."""
    parts = stack_id.split("/")
    return parts[1] if len(parts) > 2 else stack_id


def start_teardown(
    bedrock: Any, sns: Any, properties: TeardownProperties, *, stack_id: str, now: float
) -> tuple[TeardownReport, int]:
    """onEvent on stack deletion: stop jobs, start deleting throughput, tell the topic.

    Returns the report and the deadline (epoch seconds) after which :func:`continue_teardown` gives up.
    """
    try:
        report = begin(bedrock, properties.stack_tag)
    except TeardownFailed as exc:
        raise TeardownFailed(
            f"{exc} {hand_cleanup_instructions(properties.stack_tag, properties.region)}"
        ) from exc
    if report.anything:
        subject, body = report_message(
            report,
            stack_name_from_id(stack_id),
            properties.region,
            key_arn=properties.key_arn,
            models_kept=not properties.delete_custom_models,
        )
        publish_message(sns, properties.topic_arn, subject, body)
    return report, int(now) + properties.wait_seconds


def continue_teardown(
    bedrock: Any, properties: TeardownProperties, *, deadline: str | int | None, now: float
) -> tuple[bool, TeardownReport]:
    """isComplete: whether everything deletable is gone; fails naming what is left once past ``deadline``."""
    try:
        complete, report = advance(
            bedrock, properties.stack_tag, delete_custom_models=properties.delete_custom_models
        )
    except TeardownFailed as exc:
        raise TeardownFailed(
            f"{exc} {hand_cleanup_instructions(properties.stack_tag, properties.region)}"
        ) from exc
    if not complete and deadline is not None and now >= int(deadline):
        left = report.throughputs_deleting + report.custom_models_busy
        raise TeardownFailed(
            "Timed out waiting for Bedrock to delete: "
            + ", ".join(left)
            + ". Delete them by hand (aws bedrock delete-provisioned-model-throughput "
            "--provisioned-model-id <arn>; aws bedrock delete-custom-model --model-identifier <arn>), "
            "then retry the stack deletion."
        )
    return complete, report
