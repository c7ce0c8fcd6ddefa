"""The training queue as finetune runs / status show it: places, the runs ahead, who the run waits for."""

from __future__ import annotations

from datetime import UTC, datetime

from bedrock_finetune.training_queue import HOLDING, WAITING, Ticket, view_of
from finetune import runs

ARN = "arn:aws:states:us-west-2:123456789012:execution:sm:"


def _ticket(name: str, order: int, state: str = WAITING, *, asked: bool = True) -> Ticket:
    return Ticket(
        execution_arn=ARN + name,
        order=f"{order:015d}#{name}",
        run=name,
        job_name=f"ft-{name}",
        state=state,
        joined_at=float(order),
        lease_expires_at=float(order) + 3600,
        waiting_since=float(order) if asked and state == WAITING else None,
        granted_at=float(order) if state == HOLDING else None,
    )


VIEW = view_of(
    [_ticket("a", 1, HOLDING), _ticket("b", 2), _ticket("c", 3, asked=False), _ticket("d", 4)], 1, 1
)


def test_a_waiting_run_has_its_place_and_the_runs_ahead_in_the_order_they_get_a_slot() -> None:
    place = runs.queue_place(VIEW, ARN + "d")
    assert place is not None
    assert (place["state"], place["position"]) == ("waiting", 3)
    assert [(a["run"], a["state"]) for a in place["ahead"]] == [("b", "waiting"), ("c", "preparing")]


def test_a_training_run_has_nobody_ahead_and_a_run_not_in_the_queue_no_place() -> None:
    assert runs.queue_place(VIEW, ARN + "a") == {"state": "training", "position": None, "ahead": []}
    assert runs.queue_place(VIEW, ARN + "gone") is None
    assert runs.queue_place(None, ARN + "a") is None


def test_the_summary_line_lists_the_slots_and_the_line_in_order() -> None:
    assert runs.queue_summary(VIEW) == (
        "Training queue: 1 of 1 slot(s) in use; 3 run(s) in line: 1. b (waiting), 2. c (checking its data), "
        "3. d (waiting)"
    )


def test_a_run_waiting_for_a_slot_or_a_deployment_quota_says_so() -> None:
    execution = runs.RunExecution(
        arn=ARN + "d", name="d", status="RUNNING", started=datetime.now(UTC), stopped=None,
        key="datasets/d/train.jsonl", version_id=None,
    )  # fmt: skip
    for step, words in (
        ("Waiting for a training slot", "a training slot"),
        ("Take a training slot", "a training slot"),
        ("Waiting for a deployment quota", "Bedrock's deployment quota"),
        ("Handle deployment quota", "Bedrock's deployment quota"),
    ):
        found = runs.Progress(states=[(step, datetime.now(UTC))])
        assert runs.waiting_on(execution, found).startswith(words), step
