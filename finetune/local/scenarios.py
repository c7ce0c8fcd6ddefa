"""What the emulated Bedrock does in each local scenario.

A scenario only changes how the emulated *service* behaves (how a job or a Provisioned
Throughput ends, whether Bedrock throttles); the template, the state machine and the handlers
are the same in every scenario.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """How the emulated Bedrock behaves for one local run."""

    name: str
    description: str
    #: Status transitions of a customization job, from ``InProgress``.
    job_transitions: tuple[tuple[str, str], ...] = (("InProgress", "Completed"),)
    #: Status transitions of a Provisioned Throughput, from ``Creating``.
    throughput_transitions: tuple[tuple[str, str], ...] = (("Creating", "InService"),)
    #: How many GetModelCustomizationJob / GetProvisionedModelThroughput calls each status lasts.
    polls_per_status: int = 3
    #: The first N Bedrock calls answer ThrottlingException (HTTP 429).
    throttled_calls: int = 0
    #: Operations that always fail: (operation, error code, message, HTTP status).
    errors: tuple[tuple[str, str, str, int], ...] = ()
    job_failure_message: str = ""
    throughput_failure_message: str = ""


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
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; raises KeyError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}") from None
