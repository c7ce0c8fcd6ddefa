"""Step Functions' 25,000-event history: poll intervals and durations that could outgrow it fail synth."""

from __future__ import annotations

import pytest

from stacks.application import cdk_json_context
from stacks.config import (
    EVENTS_PER_POLL,
    HISTORY_EVENT_LIMIT,
    POLLING_EVENT_BUDGET,
    ConfigError,
    load_config,
    polling_history_events,
)


def test_the_budget_leaves_room_below_the_limit() -> None:
    assert EVENTS_PER_POLL == 9
    assert POLLING_EVENT_BUDGET == 20_000 < HISTORY_EVENT_LIMIT == 25_000


@pytest.mark.parametrize(
    ("job_poll", "throughput_poll", "max_job_hours", "approval_hours", "endpoint_hours", "events"),
    [
        # the defaults: a 146 h timeout (72 + 72 for an approval + 2) at 600 s = 876 job polls, and
        # the endpoint loop's own 6 h at 120 s = 180 polls
        (600, 120, 72, 72, 6, 9 * (876 + 180)),
        # the issue's case: 74 h at 60 s = 4,440 polls
        (60, 120, 72, 0, 6, 9 * (4_440 + 180)),
        # a poll cut short by a limit counts: 3 h / 7 min = 25.7 -> 26; 1 h / 7 min = 8.6 -> 9
        (420, 420, 1, 0, 1, 9 * (26 + 9)),
    ],
)
def test_polling_events(  # noqa: PLR0917 - one parameter per column of the table above
    job_poll: int,
    throughput_poll: int,
    max_job_hours: int,
    approval_hours: int,
    endpoint_hours: int,
    events: int,
) -> None:
    assert (
        polling_history_events(
            job_poll_seconds=job_poll,
            throughput_poll_seconds=throughput_poll,
            max_job_hours=max_job_hours,
            approval_timeout_hours=approval_hours,
            endpoint_wait_hours=endpoint_hours,
        )
        == events
    )


def test_the_defaults_fit_well_within_the_budget() -> None:
    config = load_config(cdk_json_context())
    events = polling_history_events(
        job_poll_seconds=config.job_poll_seconds,
        throughput_poll_seconds=config.throughput_poll_seconds,
        max_job_hours=config.max_job_hours,
        approval_timeout_hours=config.approval_timeout_hours,
        endpoint_wait_hours=config.endpoint_wait_hours,
    )
    assert events == 9_504


@pytest.mark.parametrize(
    ("overrides", "fits"),
    [
        # The endpoint loop takes 1,620 events by default, which leaves (20,000 - 1,620) // 9 = 2,042
        # job polls. With the default approval wait, the timeout is 146 h = 525,600 s: job polls every
        # 258 s fit (2,038 polls), every 257 s do not (2,046).
        ({"job_poll_seconds": 258}, True),
        ({"job_poll_seconds": 257}, False),
        # With no approval wait (approval = never): 60 s polls fit 32 h jobs (34 h, 2,040 polls), not 33 h
        ({"approval": "never", "job_poll_seconds": 60, "max_job_hours": 32}, True),
        ({"approval": "never", "job_poll_seconds": 60, "max_job_hours": 33}, False),
        # The longest job the configuration allows (794 h timeout with the approval wait): polling
        # alone fits from 1,400 s (19,998 events), but a day's wait in the training queue (the default
        # max_queue_hours) adds 342 events beyond the job polls it displaces, so 1,427 s (19,998) fits
        # and 1,426 s (20,007) does not (see waiting_history_events)
        ({"max_job_hours": 720, "job_poll_seconds": 1427}, True),
        ({"max_job_hours": 720, "job_poll_seconds": 1426}, False),
        ({"max_job_hours": 720, "job_poll_seconds": 1400}, False),
        # A fast endpoint poll is bounded by endpoint_wait_hours: 30 s for 6 h fits, for 48 h it cannot
        ({"throughput_poll_seconds": 30}, True),
        ({"throughput_poll_seconds": 30, "endpoint_wait_hours": 48}, False),
    ],
)
def test_boundaries(overrides: dict[str, int | str], fits: bool) -> None:
    context = cdk_json_context(**{k: str(v) for k, v in overrides.items()})
    if fits:
        load_config(context)
    else:
        with pytest.raises(ConfigError):
            load_config(context)


def test_the_issues_case_is_rejected_naming_the_keys_and_the_largest_allowed_values() -> None:
    # Given a job polled every minute for up to 72 hours, with an approval wait of 72 hours
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(job_poll_seconds="60", max_job_hours="72"))
    # Then synth fails naming the keys, the event count, and what would be allowed
    assert str(caught.value) == (
        "job_poll_seconds = 60 with max_job_hours = 72 and approval_timeout_hours = 72: polling the job "
        "every 60 s for up to the 146 h execution timeout, and the endpoint every 120 s "
        "(throughput_poll_seconds) for up to endpoint_wait_hours = 6, adds up to 80,460 history events, "
        "over the 20,000 the pipeline allows for polling (Step Functions fails an execution at 25,000). "
        "With these waits, the smallest allowed job_poll_seconds is 258; with job_poll_seconds = 60, the "
        "largest allowed max_job_hours is 0."
    )


def test_a_clean_up_loop_that_could_crowd_the_history_is_refused() -> None:
    """Given a one-minute clean-up retry for 24 hours (1,441 attempts, 12,969 events), synth fails
    naming both keys and the smallest interval that fits."""
    from stacks.application import cdk_json_context
    from stacks.config import ConfigError, load_config

    with pytest.raises(
        ConfigError, match=r"cleanup_retry_seconds = 60 with cleanup_max_hours = 24.*smallest"
    ):
        load_config(cdk_json_context(cleanup_retry_seconds=60, cleanup_max_hours=24))
    assert (
        load_config(cdk_json_context(cleanup_retry_seconds=300, cleanup_max_hours=2)).cleanup_max_attempts
        == 25
    )
