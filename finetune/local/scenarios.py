"""What the emulated services do, and what a user does, in each local scenario.

A scenario only changes how the emulated *services* behave (how a job or a Provisioned
Throughput ends, whether Bedrock throttles, whether SNS fails) and what the runner does as a user
would during the run (stop the execution, upload again); the template, the state machine and the
handlers are the same in every scenario.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """How the emulated Bedrock behaves for one local run."""

    name: str
    description: str
    #: Status transitions of a customization job, from ``InProgress``, evenly spread over ``job_hours``.
    job_transitions: tuple[tuple[str, str], ...] = (("InProgress", "Completed"),)
    #: How long a customization job runs, in emulated hours (the run waits for its end, not polling);
    #: ``math.inf``: it trains on until someone stops it.
    job_hours: float = 0.5
    #: Bedrock's job state-change events are lost (they are best effort): the fallback check, a
    #: schedule, wakes the run at its next tick after the job's end.
    job_event_lost: bool = False
    #: Status transitions of a Provisioned Throughput, from ``Creating``.
    throughput_transitions: tuple[tuple[str, str], ...] = (("Creating", "InService"),)
    #: How many GetProvisionedModelThroughput / GetCustomModelDeployment calls each status lasts (and
    #: GetModelCustomizationJob calls, where no job timer runs the jobs: the emulation's unit tests).
    polls_per_status: int = 3
    #: The same for a Provisioned Throughput only, when it differs (``None``: ``polls_per_status``).
    throughput_polls_per_status: int | None = None
    #: The first N Bedrock calls answer ThrottlingException (HTTP 429).
    throttled_calls: int = 0
    #: Operations that always fail: (operation, error code, message, HTTP status).
    errors: tuple[tuple[str, str, str, int], ...] = ()
    job_failure_message: str = ""
    throughput_failure_message: str = ""
    #: SNS answers the first Publish calls with these errors, one call each (all the retries of a
    #: call get its error), in order: (error code, message, HTTP status).
    publish_errors: tuple[tuple[str, str, int], ...] = ()
    #: What the user does: stop the execution (StopExecution) at the first poll of this kind
    #: (``"throughput"``) that answers this status; ``("job", "InProgress")``: while the run waits for
    #: its job to end.
    abort_at_poll: tuple[str, str] | None = None
    #: What the user does: upload a second version of ``train.jsonl`` (its records in reverse
    #: order: different bytes, as valid as the first) while the run waits in "Let uploads settle".
    reupload_during_settle: bool = False
    #: Status transitions of a custom model deployment, from ``Creating``.
    deployment_transitions: tuple[tuple[str, str], ...] = (("Creating", "Active"),)
    deployment_failure_message: str = ""
    #: What the user answers to an approval request: ``approve``, ``reject`` or ``ignore`` (it expires).
    approval: str = "approve"
    #: Configuration the scenario needs (``-c key=value`` given on the command line wins).
    context: tuple[tuple[str, str], ...] = ()
    #: What the user does: once the first run has its model served, upload a second version of
    #: ``train.jsonl`` (records reversed) to the same line, and follow that run too.
    second_version: bool = False
    #: After the run: let the line's time-to-live schedules fire (reminder, then deletion).
    fire_schedules: bool = False
    #: The account's quota of concurrent customization jobs: CreateModelCustomizationJob answers
    #: ServiceQuotaExceededException while this many jobs have not ended, and the deploy-time
    #: preflight (emulated: its answer) reads it as the default of max_concurrent_jobs. ``None``: no
    #: such quota is listed and none is enforced.
    job_quota: int | None = None
    #: How the candidate answers the run's evaluation prompts against the current model (the line's,
    #: or the base model): ``better`` (the reference, against a degraded copy), ``worse`` (the other
    #: way round), or None: every model answers the same, a tie (promoted: not worse).
    candidate_quality: str | None = None
    #: The account's custom model deployments are all taken (by other lines or tools) for a while:
    #: CreateCustomModelDeployment answers ServiceQuotaExceededException to its first N calls, then
    #: creates as usual.
    deployment_quota_refusals: int = 0

    @property
    def user_acts(self) -> bool:
        """Whether the runner acts as a user during the run (the run is then held at Wait states)."""
        return self.abort_at_poll is not None or self.reupload_during_settle


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("ok", "The job completes and the Provisioned Throughput goes in service."),
        Scenario(
            "invalid-data",
            "Same service behaviour as ok; use it with an invalid run folder to see its validation report.",
        ),
        Scenario(
            "job-fails",
            "The customization job ends Failed.",
            job_transitions=(("InProgress", "Failed"),),
            job_failure_message=(
                "Emulated failure (scenario job-fails): the training job failed with an internal error "
                "after the data processing stage."
            ),
        ),
        Scenario(
            "job-stopped",
            "Someone stops the customization job while it runs: InProgress -> Stopping -> Stopped.",
            job_transitions=(("InProgress", "Stopping"), ("Stopping", "Stopped")),
            polls_per_status=2,
        ),
        Scenario(
            "throughput-fails",
            "The job completes; the Provisioned Throughput ends Failed.",
            throughput_transitions=(("Creating", "Failed"),),
            throughput_failure_message=(
                "Emulated failure (scenario throughput-fails): insufficient capacity to provision the "
                "requested model units."
            ),
        ),
        Scenario(
            "no-model-units",
            "The job completes; buying Provisioned Throughput fails: the account has no model units.",
            errors=(
                (
                    "CreateProvisionedModelThroughput",
                    "ServiceQuotaExceededException",
                    "Your account does not currently have any no commitment model units reserved for "
                    "this model (emulated, scenario no-model-units).",
                    400,
                ),
            ),
        ),
        Scenario(
            "throttled",
            "Bedrock answers ThrottlingException to the first calls, then behaves as in ok.",
            # boto3 (standard mode, 3 attempts) absorbs two; the third surfaces as a
            # BedrockTransientError that the state machine's Retry handles; the fourth is absorbed.
            throttled_calls=4,
        ),
        Scenario(
            "abort-during-throughput",
            "The execution is stopped (StopExecution) at the first throughput poll that answers "
            "Creating; Creating lasts 6 polls, and Bedrock refuses to delete a Creating throughput.",
            throughput_polls_per_status=6,
            abort_at_poll=("throughput", "Creating"),
        ),
        Scenario(
            "reupload-during-settle",
            "A second version of train.jsonl (its records reversed) is uploaded while the run waits in "
            "Let uploads settle; it starts a second run, followed to its end too.",
            reupload_during_settle=True,
        ),
        Scenario(
            "on-demand",
            "A Nova model (Nova Lite by default) served on demand: a custom model deployment goes "
            "Creating -> Active; nothing is billed while idle. Run it with a Nova-format run folder.",
            context=(("base_model_id", "amazon.nova-lite-v1:0:300k"),),
        ),
        Scenario(
            "better-candidate",
            "A Nova model served on demand: the candidate, on a temporary deployment of its own, answers "
            "the evaluation prompts with their references; the base model answers worse. The candidate is "
            "promoted (the line's deployment is created for it). Run it with a Nova-format run folder.",
            context=(("base_model_id", "amazon.nova-lite-v1:0:300k"), ("evaluation_format", "json")),
            candidate_quality="better",
        ),
        Scenario(
            "worse-candidate",
            "As better-candidate, but the candidate answers worse than the base model: the evaluation gate "
            "keeps it; the line is unchanged and the temporary deployment is deleted.",
            context=(("base_model_id", "amazon.nova-lite-v1:0:300k"), ("evaluation_format", "json")),
            candidate_quality="worse",
        ),
        Scenario(
            "second-version",
            "The run's model is served; then a second version of the same line is uploaded, trains a "
            "new model and replaces the model behind the same endpoint (its ARN does not change; the "
            "first model is kept for rollback).",
            second_version=True,
        ),
        Scenario(
            "approval-rejected",
            "The user rejects the approval request for the Provisioned Throughput: nothing is bought, "
            "the model is kept.",
            approval="reject",
        ),
        Scenario(
            "approval-expired",
            "Nobody answers the approval request; it expires after approval_timeout_hours (1 h here): "
            "nothing is bought, the model is kept.",
            approval="ignore",
            context=(("approval_timeout_hours", "1"),),
        ),
        Scenario(
            "ttl-expired",
            "The Provisioned Throughput gets a 2-hour time to live (throughput_ttl_hours=2, reminder 1 h "
            "before); the schedules fire: a reminder, then the throughput is deleted.",
            context=(("throughput_ttl_hours", "2"), ("ttl_reminder_hours", "1")),
            fire_schedules=True,
        ),
        Scenario(
            "deployment-fails",
            "A Nova model served on demand; the custom model deployment ends Failed: the run fails and "
            "the failed deployment is deleted.",
            context=(("base_model_id", "amazon.nova-lite-v1:0:300k"),),
            deployment_transitions=(("Creating", "Failed"),),
            deployment_failure_message=(
                "Emulated failure (scenario deployment-fails): the deployment could not be created."
            ),
        ),
        Scenario(
            "deployment-quota",
            "A Nova model served on demand while the account's custom model deployments are all taken: "
            "Bedrock refuses the deployment for its quota 3 times; the run waits with back-off and a "
            "notice (deployment_quota_policy = wait), then the deployment is created. Evaluation is off, "
            "so that the line's own deployment meets the refusals (evaluation-deployment-quota: the "
            "evaluation's).",
            context=(
                ("base_model_id", "amazon.nova-lite-v1:0:300k"),
                ("deployment_quota_policy", "wait"),
                ("evaluation", "false"),
            ),
            deployment_quota_refusals=3,
        ),
        Scenario(
            "evaluation-deployment-quota",
            "As deployment-quota, with evaluation on: Bedrock refuses the candidate's temporary "
            "evaluation deployment (created first) for its quota 3 times; the evaluation waits with "
            "back-off and one notice, then scores the candidate, which is served.",
            context=(
                ("base_model_id", "amazon.nova-lite-v1:0:300k"),
                ("deployment_quota_policy", "wait"),
            ),
            deployment_quota_refusals=3,
        ),
        Scenario(
            "quota-2",
            "The account may run 2 customization jobs at once (its Service Quotas value, which the "
            "preflight reads); jobs take 20 emulated minutes, throughput 2 polls. Upload several runs: the "
            "third waits for a slot.",
            job_quota=2,
            job_hours=1 / 3,
            polls_per_status=2,
        ),
        Scenario(
            "eight-hour-job",
            "The customization job trains for 8 emulated hours; its end event wakes the run (no polling), "
            "then the throughput goes in service as in ok.",
            job_hours=8,
        ),
        Scenario(
            "job-event-lost",
            "The job trains for 1 h 45 min (emulated) and Bedrock's events are lost (they are best effort): "
            "the fallback check (every job_poll_seconds, 10 min) notices at its next tick that the job "
            "ended and wakes the run.",
            job_hours=1.75,
            job_event_lost=True,
        ),
        Scenario(
            "abort-while-training",
            "The execution is stopped (StopExecution) while it waits for its 8-hour job: the clean-up "
            "stops the job and gives the training slot back; the job's end wakes nothing.",
            job_hours=8,
            abort_at_poll=("job", "InProgress"),
        ),
        Scenario(
            "notify-transient-failure",
            "SNS answers the first Publish call with InternalError (HTTP 500), every retry of it "
            "included; later calls publish.",
            publish_errors=(
                (
                    "InternalError",
                    "Request could not be completed (emulated, scenario notify-transient-failure).",
                    500,
                ),
            ),
        ),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; raises KeyError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
