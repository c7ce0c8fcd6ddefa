"""Step Functions' 25,000-event history: waits and durations that could outgrow it fail synth."""

from __future__ import annotations

import pytest

from bedrock_finetune.endpoint_wait import polls_within, wait_seconds
from stacks.application import cdk_json_context
from stacks.config import (
    EVENTS_PER_POLL,
    HISTORY_EVENT_LIMIT,
    JOB_WAIT_EVENTS,
    POLLING_EVENT_BUDGET,
    ConfigError,
    load_config,
    polling_history_events,
)


def test_the_budget_leaves_room_below_the_limit() -> None:
    assert (EVENTS_PER_POLL, JOB_WAIT_EVENTS) == (9, 5)
    assert POLLING_EVENT_BUDGET == 20_000 < HISTORY_EVENT_LIMIT == 25_000


def test_the_endpoint_waits_start_at_a_minute_and_double_up_to_the_cap() -> None:
    assert [wait_seconds(n, 300) for n in range(6)] == [60, 120, 240, 300, 300, 300]
    assert [wait_seconds(n, 30) for n in range(3)] == [30, 30, 30]
    # Looks until the deadline: the first one at or past it ends the loop
    assert polls_within(420, 300) == 3  # 60 + 120 + 240 = 420
    assert polls_within(421, 300) == 4


@pytest.mark.parametrize(
    ("throughput_poll", "endpoint_hours", "looks"),
    [
        # the defaults: 60 + 120 + 240, then 71 waits of 300 s for the rest of 6 h
        (300, 6, 74),
        # a 30 s cap over 48 h: 5,760 looks, far over the budget
        (30, 48, 5_760),
        # a 1 h cap over 1 h: 60, 120, 240, 480, 960, then one long wait
        (3600, 1, 6),
    ],
)
def test_waiting_for_the_job_is_constant_and_the_endpoint_loop_counts_its_looks(
    throughput_poll: int, endpoint_hours: int, looks: int
) -> None:
    # The job's wait is 7 events whatever max_job_hours is: it is not an argument at all
    assert (
        polling_history_events(throughput_poll_seconds=throughput_poll, endpoint_wait_hours=endpoint_hours)
        == JOB_WAIT_EVENTS + EVENTS_PER_POLL * looks
    )


def test_the_defaults_fit_well_within_the_budget() -> None:
    config = load_config(cdk_json_context())
    events = polling_history_events(
        throughput_poll_seconds=config.throughput_poll_seconds, endpoint_wait_hours=config.endpoint_wait_hours
    )
    assert events == 671


@pytest.mark.parametrize(
    ("overrides", "fits"),
    [
        # The longest job the configuration allows, with job checks every minute: the job's wait is
        # one task, so neither matters any more
        ({"max_job_hours": 720, "job_poll_seconds": 60}, True),
        # A fast endpoint poll is bounded by endpoint_wait_hours: 30 s for 6 h fits, for 48 h it cannot
        ({"throughput_poll_seconds": 30}, True),
        ({"throughput_poll_seconds": 30, "endpoint_wait_hours": 48}, False),
        # 48 h of looks at most 120 s apart (12,976 events) fit with a day in the queue (2,030); 78 s
        # apart (19,951) fit alone, not with the queue's waits
        ({"throughput_poll_seconds": 120, "endpoint_wait_hours": 48}, True),
        ({"throughput_poll_seconds": 78, "endpoint_wait_hours": 48}, False),
    ],
)
def test_boundaries(overrides: dict[str, int | str], fits: bool) -> None:
    context = cdk_json_context(**{k: str(v) for k, v in overrides.items()})
    if fits:
        load_config(context)
    else:
        with pytest.raises(ConfigError):
            load_config(context)


def test_an_endpoint_poll_that_could_outgrow_the_history_is_rejected_naming_the_keys() -> None:
    # Given looks at most 30 s apart for up to 48 hours
    with pytest.raises(ConfigError) as caught:
        load_config(cdk_json_context(throughput_poll_seconds="30", endpoint_wait_hours="48"))
    # Then synth fails naming the keys, the event count, and the smallest cap that fits
    assert str(caught.value) == (
        "throughput_poll_seconds = 30 with endpoint_wait_hours = 48: looking at the endpoint after 1, 2, "
        "4... minutes, then every 30 s, for up to 48 h adds up to 51,845 history events, over the 20,000 "
        "the pipeline allows for waiting (Step Functions fails an execution at 25,000). With "
        "endpoint_wait_hours = 48, the smallest allowed throughput_poll_seconds is 78."
    )


def test_a_clean_up_loop_that_could_crowd_the_history_is_refused() -> None:
    """Given a one-minute clean-up retry for 24 hours (1,441 attempts, 12,969 events), synth fails
    naming both keys and the smallest interval that fits."""
    with pytest.raises(
        ConfigError, match=r"cleanup_retry_seconds = 60 with cleanup_max_hours = 24.*smallest"
    ):
        load_config(cdk_json_context(cleanup_retry_seconds=60, cleanup_max_hours=24))
    assert (
        load_config(cdk_json_context(cleanup_retry_seconds=300, cleanup_max_hours=2)).cleanup_max_attempts
        == 25
    )
