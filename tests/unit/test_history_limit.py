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
    ("job_poll", "throughput_poll", "max_job_hours", "events"),
    [
        # the defaults: 74 h at the 120 s throughput interval = 2,220 polls
        (600, 120, 72, 9 * 2_220),
        # the issue's case: 74 h at 60 s = 4,440 polls
        (60, 120, 72, 9 * 4_440),
        # the shorter interval decides, whichever loop it belongs to
        (300, 600, 10, 9 * 144),
        (600, 300, 10, 9 * 144),
        # a poll cut short by the timeout counts: 3 h / 7 min = 25.7 -> 26
        (420, 420, 1, 9 * 26),
    ],
)
def test_polling_events(job_poll: int, throughput_poll: int, max_job_hours: int, events: int) -> None:
    assert (
        polling_history_events(
            job_poll_seconds=job_poll, throughput_poll_seconds=throughput_poll, max_job_hours=max_job_hours
        )
        == events
    )


def test_the_defaults_fit_just_within_the_budget() -> None:
    config = load_config(cdk_json_context())
    events = polling_history_events(
        job_poll_seconds=config.job_poll_seconds,
        throughput_poll_seconds=config.throughput_poll_seconds,
        max_job_hours=config.max_job_hours,
    )
    assert events == 19_980


@pytest.mark.parametrize(
    ("overrides", "fits"),
    [
        # job_poll_seconds = 60: 35 h fits (37 h timeout, 2,220 polls), 36 h does not (2,280)
        ({"job_poll_seconds": 60, "max_job_hours": 35}, True),
        ({"job_poll_seconds": 60, "max_job_hours": 36}, False),
        # max_job_hours = 72 (74 h timeout): job polls every 120 s fit, every 119 s do not
        ({"job_poll_seconds": 120, "max_job_hours": 72}, True),
        ({"job_poll_seconds": 119, "throughput_poll_seconds": 600, "max_job_hours": 72}, False),
        # the throughput interval is bound the same way: 120 s allows 72 h, not 73 h
        ({"max_job_hours": 72}, True),
        ({"max_job_hours": 73}, False),
        ({"max_job_hours": 73, "throughput_poll_seconds": 122}, True),
        ({"max_job_hours": 73, "throughput_poll_seconds": 121}, False),
        # the longest job the configuration allows, with intervals long enough
        ({"max_job_hours": 720, "job_poll_seconds": 1200, "throughput_poll_seconds": 1200}, True),
        ({"max_job_hours": 720, "job_poll_seconds": 1200, "throughput_poll_seconds": 1169}, False),
    ],
)
def test_boundaries(overrides: dict[str, int], fits: bool) -> None:
    context = cdk_json_context(**{k: str(v) for k, v in overrides.items()})
    if fits:
        load_config(context)
    else:
        with pytest.raises(ConfigError):
            load_config(context)


def test_the_issues_case_is_rejected_naming_both_keys_and_the_largest_allowed_values() -> None:
    # Given a job polled every minute for up to 72 hours
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(job_poll_seconds="60", max_job_hours="72"))
    # Then synth fails naming both keys, the event count, and what would be allowed
    assert str(caught.value) == (
        "job_poll_seconds = 60 with max_job_hours = 72: polling every 60 s for up to the 74 h execution "
        "timeout adds up to 39,960 history events, over the 20,000 the pipeline allows for polling "
        "(Step Functions fails an execution at 25,000). With job_poll_seconds = 60, the largest allowed "
        "max_job_hours is 35; with max_job_hours = 72, the smallest allowed job_poll_seconds is 120."
    )


def test_a_fast_throughput_poll_is_named_when_it_is_the_shorter_interval() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(throughput_poll_seconds="30"))
    message = str(caught.value)
    assert message.startswith("throughput_poll_seconds = 30 with max_job_hours = 72: ")
    assert "the largest allowed max_job_hours is 16;" in message
    assert "the smallest allowed throughput_poll_seconds is 120." in message


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
