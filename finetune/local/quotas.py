"""The emulated account's quota of concurrent customization jobs, and the job history tests read.

The deploy-time preflight is not run in the emulation (it asks a real account about its model and
its quotas), but the training queue's function reads its answer (``MaxConcurrentJobs``) from the
environment. :func:`preflight_answers` gives that answer as the preflight would with the emulated
account: the configured ``max_concurrent_jobs`` never above the scenario's quota, the same plain logic
(``bedrock_finetune.preflight.effective_job_limit``).

:func:`job_history` reads the emulated Bedrock's record of every customization job: when it was
created and when it ended (the poll that first answered Completed, Failed or Stopped), so a test can
tell how many ran at once and in which order they started.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bedrock_finetune.lineage import TAG_RUN
from bedrock_finetune.preflight import JOB_LIMIT_ATTRIBUTE, effective_job_limit
from bedrock_finetune.settings import PreflightProperties
from finetune.local import bedrock
from finetune.local.scenarios import Scenario

PREFLIGHT = "Custom::BedrockPreflight"


def preflight_answers(
    resource_type: str, properties: Mapping[str, Any], scenario: Scenario
) -> dict[str, str]:
    """The attributes the preflight would answer in the emulated account (only those it can know)."""
    if resource_type != PREFLIGHT:
        return {}
    configured = str(properties.get(PreflightProperties.variable("max_concurrent_jobs")) or "")
    limit = effective_job_limit(int(configured) if configured else None, scenario.job_quota)
    return {JOB_LIMIT_ATTRIBUTE: str(limit)}


@dataclass(frozen=True)
class JobRecord:
    """One customization job in the emulated Bedrock."""

    name: str
    run: str
    started: datetime
    #: When it ended (None while it runs, Stopping included).
    ended: datetime | None
    status: str


def job_history(account: str, region: str) -> list[JobRecord]:
    """Every customization job, in the order they were created."""
    state = bedrock.state_for(account, region)
    records = [
        JobRecord(
            name=job.params["jobName"],
            run=state.tags.get(job.job_arn, {}).get(TAG_RUN, ""),
            started=job.creation_time,
            ended=job.end_time if job.ended else None,
            status=job.reported_status,
        )
        for job in state.jobs.values()
    ]
    return sorted(records, key=lambda r: r.started)


def most_at_once(history: Sequence[JobRecord]) -> int:
    """The most jobs running at the same moment (a job ending as another starts counts once)."""
    moments = [(r.started, 1) for r in history] + [(r.ended, -1) for r in history if r.ended is not None]
    running = peak = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        running += change
        peak = max(peak, running)
    return peak


def quota_refusals(account: str, region: str) -> list[tuple[datetime, str]]:
    """CreateModelCustomizationJob calls the emulated quota refused: (when, job name)."""
    return list(bedrock.state_for(account, region).quota_refusals)


def deployment_quota_refusals(account: str, region: str) -> list[tuple[datetime, str]]:
    """CreateCustomModelDeployment calls the emulated deployments quota refused: (when, deployment name)."""
    return list(bedrock.state_for(account, region).deployment_quota_refusals)
