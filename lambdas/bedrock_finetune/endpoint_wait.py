"""How long to wait between two looks at an endpoint: short at first, growing to a cap.

Bedrock sends no event when a Provisioned Throughput or a custom model deployment becomes ready, so
the state machine polls it ("Wait for endpoint" -> "Get endpoint status" -> "Endpoint ready?"). Serve
model and each Get endpoint status put the next wait in ``$.endpoint.waitSeconds`` (the Wait state's
``SecondsPath``): 1, 2, 4, 8... minutes, at most ``throughput_poll_seconds``. An endpoint ready in a
few minutes is noticed within about a minute; one that takes hours costs few polls. The configuration
check (``stacks/config.py``) counts the polls with :func:`polls_within`. Imports nothing but the
standard library: ``finetune validate`` reads the configuration without botocore.
"""

from __future__ import annotations

#: The first wait after Serve model; each later wait doubles, up to the cap.
FIRST_WAIT_SECONDS = 60


def wait_seconds(polls: int, cap: int) -> int:
    """The wait before look number ``polls + 1`` (``polls`` looks taken so far): 60 s doubling, at most
    ``cap`` (and never above it, even when ``cap`` is under a minute)."""
    return int(min(cap, FIRST_WAIT_SECONDS * 2 ** min(polls, 20)))


def polls_within(limit_seconds: int, cap: int) -> int:
    """The most looks the loop takes before its deadline ``limit_seconds`` after Serve model: each
    look comes after its wait, and the first look at or past the deadline ends the loop (the endpoint
    is then reported failed)."""
    waited, polls = 0, 0
    while waited < limit_seconds:
        waited += wait_seconds(polls, cap)
        polls += 1
    return polls
