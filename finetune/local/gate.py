"""Hold one execution at each Wait state until the runner has looked at its history.

A scenario in which the user acts during the run (stops the execution while the throughput is
Creating, uploads again while the run settles) needs the runner to act at a precise point of the
execution. With waits compressed (time scale 0 in the tests), the execution would race past that
point before the runner has read the history. The gate makes it deterministic without changing the
definition: when the execution the gate follows enters a Wait state, its thread stops before
waiting until the runner has read the history up to there (which includes the Wait's
``WaitStateEntered`` event and every earlier one), acted, and released it. Other executions pass.
"""

from __future__ import annotations

import threading
from typing import Any

#: The longest a held execution waits for the runner (real seconds) before it goes on by itself.
HOLD_SECONDS = 60.0


def _context(env: Any) -> dict[str, Any]:
    data = env.states.context_object.context_object_data
    return data if isinstance(data, dict) else {}


class WaitGate:
    """Holds the Wait states of the first execution of ``state_machine_arn`` that reaches one."""

    def __init__(self, state_machine_arn: str, hold_seconds: float = HOLD_SECONDS) -> None:
        self.state_machine_arn = state_machine_arn
        self.hold_seconds = hold_seconds
        #: The execution held (the first of the state machine to reach a Wait state).
        self.execution_arn: str | None = None
        self._arrived = 0
        self._released = 0
        self._open = False
        self._condition = threading.Condition()
        #: Wait states the execution was held at, in order.
        self.held: list[str] = []

    def __call__(self, env: Any) -> None:
        """At a Wait state (the execution's thread): hold it if it is the followed execution."""
        context = _context(env)
        execution = str((context.get("Execution") or {}).get("Id", ""))
        machine = str((context.get("StateMachine") or {}).get("Id", ""))
        with self._condition:
            if self._open or machine != self.state_machine_arn:
                return
            if self.execution_arn is None:
                self.execution_arn = execution
            if execution != self.execution_arn:
                return
            self._arrived += 1
            arrival = self._arrived
            self.held.append(str((context.get("State") or {}).get("Name", "")))
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._open or self._released >= arrival, self.hold_seconds)

    def arrivals(self) -> int:
        """How many times the followed execution has reached a Wait state so far."""
        with self._condition:
            return self._arrived

    def release(self, up_to: int) -> None:
        """Let the execution go on from its first ``up_to`` Wait states."""
        with self._condition:
            self._released = max(self._released, up_to)
            self._condition.notify_all()

    def open(self) -> None:
        """Hold nothing any more (the run is over, or the runner stops following)."""
        with self._condition:
            self._open = True
            self._condition.notify_all()
