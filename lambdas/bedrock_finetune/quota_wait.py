"""Waiting out a quota instead of failing: one back-off schedule, one wait-or-fail decision.

The training queue uses it for a run waiting for a training slot (and for Bedrock's own concurrent-job
quota); serving uses :func:`wait_or_fail` for quotas it meets (deployments per account,
``deployment_quota_policy``). The configuration check (``stacks/config.py``) counts the history events
the schedule can add with :func:`extra_history_events`, so the schedule is written once, here.

A waiting state machine loop looks like this (one round)::

    <the call that met the quota, or the slot check>  Task   5 events
    <decide: wait_or_fail, or take_slot>              Task   5 events
    <waiting?>                                        Choice 2 events
    <Wait SecondsPath $.….waitSeconds>                Wait   2 events
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The first wait after a quota refusal; each later wait doubles, up to the cap.
FIRST_WAIT_SECONDS = 120
#: The cap is never below this: a queue checked more often costs history events and saves little.
MIN_CAP_SECONDS = 600
#: A run far back in the training queue checks less often: once per round of slots ahead of it, at
#: most this many caps apart (1 hour with the defaults). Its place only moves when slots free up.
MAX_WAIT_CAPS = 6
#: At most this many history events per round of a waiting loop (see the module docstring).
EVENTS_PER_WAIT_ROUND = 14

QuotaPolicyName = Literal["wait", "fail"]


def cap_for(poll_seconds: int) -> int:
    """The longest wait between two checks: the poll interval that frees the quota, at least 10 minutes.

    A training slot frees when a job ends, which its run notices from the job's end event, or at the
    latest at the fallback check every ``job_poll_seconds``; so a waiting run checks about that often,
    and never more often than every 10 minutes once it has waited a while."""
    return max(MIN_CAP_SECONDS, poll_seconds)


def longest_queue_wait(cap: int) -> int:
    """The longest a run waits between two looks at the training queue."""
    return MAX_WAIT_CAPS * cap


def wait_seconds(attempt: int, cap: int) -> int:
    """The wait after the ``attempt``-th refusal (counted from 0): 2, 4, 8 minutes..., at most ``cap``."""
    return int(min(cap, FIRST_WAIT_SECONDS * 2 ** min(attempt, 20)))


def schedule(limit_seconds: int, cap: int) -> Iterator[tuple[int, int]]:
    """``(rounds, seconds waited)`` after each round of waiting, while the total stays within
    ``limit_seconds``."""
    waited, rounds = 0, 0
    while True:
        waited += wait_seconds(rounds, cap)
        rounds += 1
        if waited > limit_seconds:
            return
        yield rounds, waited


def extra_history_events(*, limit_seconds: int, cap: int, poll_seconds: int, events_per_poll: int) -> int:
    """The most history events a waiting loop adds beyond what polling would have added meanwhile.

    A waiting run does not poll (its job has not started yet, or its deployment waits), and every
    second it waits is a second of the execution's timeout it does not spend in the polling loops.
    So the worst case of the two together is the polling worst case plus the largest "gain"::

        max over k rounds of  14 * k - events_per_poll * floor(seconds waited after k rounds / poll)

    (never negative: waiting no round at all is a choice). ``ceil(T - w) <= ceil(T) - floor(w)`` keeps
    the sum an upper bound of the real worst case."""
    best = 0
    for rounds, waited in schedule(limit_seconds, cap):
        best = max(best, EVENTS_PER_WAIT_ROUND * rounds - events_per_poll * math.floor(waited / poll_seconds))
    return best


@dataclass(frozen=True)
class QuotaWaitPolicy:
    """What to do when a quota refuses a call: ``wait`` (with back-off, up to ``max_wait_seconds``) or
    ``fail`` at once."""

    policy: QuotaPolicyName
    max_wait_seconds: int
    cap_seconds: int = MIN_CAP_SECONDS


def wait_or_fail(
    policy: QuotaWaitPolicy, *, previous: Mapping[str, Any] | None, error: str, what: str
) -> dict[str, Any]:
    """After ``what`` (e.g. "a custom model deployment") met a quota, with Bedrock's ``error`` message:
    the next wait, or a typed error that fails the run.

    ``previous`` is this function's result of the round before (``None`` at the first refusal). Raises
    :class:`BedrockQuotaExceeded` under the ``fail`` policy, and :class:`QuotaWaitExpired` once the
    waits add up to ``max_wait_seconds``. Otherwise returns ``waitSeconds`` (for a Wait state's
    SecondsPath), ``waitedSeconds`` (the waits before this one), ``attempt`` (this refusal, from 0),
    ``firstWait`` (true at the first refusal: publish the notice then) and ``error``."""
    # Imported here: the schedule arithmetic above is read by the config (and `finetune validate`),
    # which must not load botocore; only raising needs the typed errors.
    from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired  # noqa: PLC0415

    if policy.policy == "fail":
        raise BedrockQuotaExceeded(
            f"{what}: {error} The configured policy is to fail (set the policy to wait to queue instead)."
        )
    previous = previous or {}
    attempt = int(previous.get("attempt", -1)) + 1
    waited = int(previous.get("waitedSeconds") or 0) + int(previous.get("waitSeconds") or 0)
    if waited >= policy.max_wait_seconds:
        raise QuotaWaitExpired(
            f"{what}: waited {_hours(waited)} for a quota and gave up (the maximum is "
            f"{_hours(policy.max_wait_seconds)}); nothing was bought. Bedrock said: {error}"
        )
    return {
        "waitSeconds": min(wait_seconds(attempt, policy.cap_seconds), policy.max_wait_seconds - waited),
        "waitedSeconds": waited,
        "attempt": attempt,
        "firstWait": attempt == 0,
        "error": error,
    }


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{round(seconds / 60)} min"
