"""The training queue's configuration: its keys, and the history events its waiting loops may add."""

from __future__ import annotations

import pytest

from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.quota_wait import QuotaWaitPolicy, extra_history_events, schedule, wait_or_fail
from bedrock_finetune.settings import DeploymentQuotaSettings
from stacks.application import cdk_json_context
from stacks.config import (
    EVENTS_PER_POLL,
    POLLING_EVENT_BUDGET,
    ConfigError,
    load_config,
    polling_history_events,
    waiting_history_events,
)


def test_the_defaults_let_the_account_quota_decide_and_fail_deployment_quotas() -> None:
    config = load_config(cdk_json_context())
    assert config.max_concurrent_jobs is None  # the preflight reads the quota at deploy time
    assert (config.max_queue_hours, config.deployment_quota_policy, config.max_deployment_wait_hours) == (
        24,
        "fail",
        6,
    )
    # A run checks for a slot at least every 10 minutes once it has waited a while, and a ticket
    # outlives the longest wait between two checks (1 hour) twice over
    assert config.queue_wait_cap_seconds == 600
    assert config.queue_lease_seconds > 2 * 3600


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"max_concurrent_jobs": "0"}, "max_concurrent_jobs = '0': must be an integer from 1 to 100"),
        ({"max_queue_hours": "0"}, "max_queue_hours = '0': must be an integer from 1 to 720"),
        (
            {"max_queue_hours": "72"},
            "max_queue_hours = 72: must be below max_job_hours = 72. The execution times out 146 h after the "
            "upload, the wait for a training slot included",
        ),
        (
            {"deployment_quota_policy": "retry"},
            "deployment_quota_policy = 'retry': allowed values are wait, fail",
        ),
        (
            {"max_deployment_wait_hours": "100"},
            "max_deployment_wait_hours = '100': must be an integer from 1 to 72",
        ),
    ],
)
def test_bad_values_name_the_key(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(cdk_json_context(**overrides))
    assert str(error.value).startswith(expected)


def test_a_configured_limit_is_read() -> None:
    assert load_config(cdk_json_context(max_concurrent_jobs="3")).max_concurrent_jobs == 3


def test_the_back_off_schedule_doubles_up_to_the_cap() -> None:
    assert [waited for _, waited in schedule(3600, 600)] == [120, 360, 840, 1440, 2040, 2640, 3240]


def test_waiting_costs_events_only_where_it_is_denser_than_polling() -> None:
    # Given the 120 s throughput poll: the first 2-minute wait costs 14 events where a poll costs 9
    assert extra_history_events(limit_seconds=24 * 3600, cap=600, poll_seconds=120, events_per_poll=9) == 5
    # With 60 s polls, waiting is never denser than polling
    assert extra_history_events(limit_seconds=24 * 3600, cap=600, poll_seconds=60, events_per_poll=9) == 0
    # With 20-minute polls, a run that waits a day for a slot costs more than polling would
    assert extra_history_events(limit_seconds=24 * 3600, cap=1200, poll_seconds=1200, events_per_poll=9) > 300


def test_the_defaults_stay_within_the_budget_with_the_longest_waits() -> None:
    config = load_config(cdk_json_context(deployment_quota_policy="wait"))
    assert config.approval_possible
    polling = polling_history_events(
        throughput_poll_seconds=config.throughput_poll_seconds,
        endpoint_wait_hours=config.endpoint_wait_hours,
    )
    waiting = waiting_history_events(
        job_poll_seconds=config.job_poll_seconds,
        throughput_poll_seconds=config.throughput_poll_seconds,
        max_queue_hours=config.max_queue_hours,
        max_deployment_wait_hours=config.max_deployment_wait_hours,
    )
    # The job is waited for with a task token (5 events) and the endpoint polled with back-off for 6 h
    # (74 looks); nothing polls while a run waits, so every round of a wait counts (14 events): 145
    # rounds for a day in the queue, 37 for 6 h waiting for a deployment quota
    assert (polling, waiting) == (5 + 9 * 74, 14 * (145 + 37))
    assert polling + waiting <= POLLING_EVENT_BUDGET


def test_a_queue_wait_that_could_outgrow_the_history_fails_synth_naming_it() -> None:
    # Given checks every 20 minutes (no approval wait): polling alone is small (the job's wait and the
    # endpoint over 6 h, 22 looks)
    context = {
        "max_job_hours": "600",
        "job_poll_seconds": "1200",
        "throughput_poll_seconds": "1200",
        "approval": "never",
    }
    assert (
        polling_history_events(throughput_poll_seconds=1200, endpoint_wait_hours=6)
        == 5 + EVENTS_PER_POLL * 22
    )
    load_config(cdk_json_context(**context, max_queue_hours="24"))
    # When runs may also wait 20 days for a slot, checking every 20 minutes (14 events a round)
    with pytest.raises(ConfigError) as error:
        load_config(cdk_json_context(**context, max_queue_hours="480"))
    # Then synth fails, naming the key and the events
    message = str(error.value)
    assert message.startswith("max_queue_hours = 480: waiting for a training slot (or a quota) checks again")
    assert "over the 20,000 the pipeline allows" in message


def test_the_deployment_policy_fails_at_once_or_waits_with_back_off() -> None:
    fail = QuotaWaitPolicy("fail", 6 * 3600)
    with pytest.raises(BedrockQuotaExceeded) as failed:
        wait_or_fail(
            fail, previous=None, error="ServiceQuotaExceededException: 2 deployments", what="a deployment"
        )
    assert str(failed.value).startswith("a deployment: ServiceQuotaExceededException: 2 deployments")
    wait = QuotaWaitPolicy("wait", 3600, cap_seconds=600)
    first = wait_or_fail(wait, previous=None, error="full", what="a deployment")
    assert (first["waitSeconds"], first["waitedSeconds"], first["firstWait"]) == (120, 0, True)
    second = wait_or_fail(wait, previous=first, error="full", what="a deployment")
    assert (second["waitSeconds"], second["waitedSeconds"], second["firstWait"]) == (240, 120, False)
    # The last wait is cut to what is left of the maximum, then it gives up saying why
    before = {"attempt": 6, "waitedSeconds": 3000, "waitSeconds": 500}
    late = wait_or_fail(wait, previous=before, error="full", what="a deployment")
    assert late["waitSeconds"] == 100
    with pytest.raises(QuotaWaitExpired) as gave_up:
        wait_or_fail(wait, previous=late, error="full", what="a deployment")
    assert str(gave_up.value).startswith("a deployment: waited 1 h for a quota and gave up")


def test_the_serving_functions_read_the_policy_from_their_settings() -> None:
    settings = DeploymentQuotaSettings(policy="wait", max_wait_seconds=7200, cap_seconds=600)
    decoded = DeploymentQuotaSettings.from_env(settings.to_env())
    assert decoded.as_policy() == QuotaWaitPolicy("wait", 7200, 600)
