"""The polling loops of the synthesized definition add the history events the configuration check counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bedrock_finetune.quota_wait import EVENTS_PER_WAIT_ROUND
from stacks.config import EVENTS_PER_POLL, EVENTS_PER_STATE, JOB_WAIT_EVENTS
from tests.conftest import Synthesized
from tests.infra.test_workflow import _pipeline_machine, _render


@pytest.fixture(scope="module")
def states(synthesized: Synthesized) -> dict[str, Any]:
    definition = json.loads(_render(_pipeline_machine(synthesized)["Properties"]["DefinitionString"]))
    return definition["States"]  # type: ignore[no-any-return]


def _loop(states: dict[str, Any], start: str) -> list[str]:
    """The states from ``start`` back to it, following Next, and a Choice's Default (keep polling)."""
    path = [start]
    while True:
        state = states[path[-1]]
        following = state["Default"] if state["Type"] == "Choice" else state["Next"]
        if following == start:
            return path
        path.append(following)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("Wait for endpoint", ["Wait for endpoint", "Get endpoint status", "Endpoint ready?"]),
        (
            "Waiting for a training slot",
            ["Waiting for a training slot", "Take a training slot", "Training slot taken?"],
        ),
    ],
)
def test_one_poll_adds_the_events_the_check_counts(
    states: dict[str, Any], start: str, expected: list[str]
) -> None:
    # Given the polling loop as deployed
    loop = _loop(states, start)
    assert loop == expected
    # Then one round of it adds EVENTS_PER_POLL history events (a new state in the loop would change this)
    assert sum(EVENTS_PER_STATE[states[name]["Type"]] for name in loop) == EVENTS_PER_POLL


def test_a_round_of_waiting_for_bedrocks_job_quota_adds_the_events_the_check_counts(
    states: dict[str, Any],
) -> None:
    """Bedrock refused the job for a quota: Start customization job -> (catch) Take a training slot ->
    Training slot taken? -> Waiting for a training slot -> Take... the config check counts 14 a round."""
    (quota_catch, _) = states["Start customization job"]["Catch"]
    assert quota_catch["Next"] == "Take a training slot"
    loop = ["Start customization job", *_loop(states, "Waiting for a training slot")]
    assert sum(EVENTS_PER_STATE[states[name]["Type"]] for name in loop) == EVENTS_PER_WAIT_ROUND


def test_waiting_for_the_job_adds_the_events_the_check_counts_once(states: dict[str, Any]) -> None:
    """Start customization job -> Wait for the job to end -> Collect training results: the wait is one
    task, answered once when the job ends, so it adds JOB_WAIT_EVENTS whatever the job's length."""
    assert states["Start customization job"]["Next"] == "Wait for the job to end"
    assert states["Wait for the job to end"]["Next"] == "Collect training results"
    assert states["Wait for the job to end"]["Type"] == "Task"
    assert EVENTS_PER_STATE["Task"] == JOB_WAIT_EVENTS == 5
