"""Time compression: the definition keeps its real waits; the emulation takes them faster.

Wait states (settle 60 s, job polls 10 min, throughput polls 2 min) and Retry back-off run in
moto's ASL interpreter as real sleeps. Scaling them here leaves the state machine definition
byte-for-byte as synthesized. The clock keeps the *AWS time* the run would have taken, so the
progress output can show both.

boto3's own retry back-off inside the handlers (standard mode) is scaled the same way, so the
``throttled`` scenario does not sleep for seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from botocore.retries.standard import ExponentialBackoff
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import EvalTimeoutError, TimeoutSeconds
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from finetune.local.defaults import DEFAULT_SCALE, SERVER_SCALE

__all__ = ["DEFAULT_SCALE", "SERVER_SCALE", "Clock"]


#: The shortest real time a task-token wait (an approval) lasts in the emulation, whatever the scale.
CALLBACK_FLOOR_SECONDS = 3.0


@dataclass
class Clock:
    """Scaled waiting, plus the AWS time the waits stand for."""

    scale: float = DEFAULT_SCALE
    aws_seconds: float = 0.0
    #: (real time a wait ended, AWS seconds waited in total by then), in order.
    marks: list[tuple[float, float]] = field(default_factory=list)
    #: Called with the interpreter's environment when a Wait state starts, before it waits
    #: (``finetune.local.gate.WaitGate`` holds an execution there for the runner).
    gate: Callable[[Any], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def waited(self, seconds: float) -> float:
        """Account for ``seconds`` of AWS time; returns how long to really wait."""
        with self._lock:
            self.aws_seconds += max(0.0, seconds)
        return max(0.0, seconds) * self.scale

    def mark(self) -> None:
        """Record that a wait has just ended."""
        with self._lock:
            self.marks.append((time.time(), self.aws_seconds))

    def aws_time_at(self, real_time: float) -> float:
        """AWS seconds waited by ``real_time`` (for stamping history events)."""
        total = 0.0
        for ended, aws in list(self.marks):
            if ended > real_time:
                break
            total = aws
        return total

    def sleep(self, seconds: float) -> None:
        real = self.waited(seconds)
        if real > 0:
            time.sleep(real)
        self.mark()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Clock]:
        """Compress Wait states, Retry back-off and boto3 retry back-off while the context is open."""
        clock = self

        def wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
            if clock.gate is not None:
                clock.gate(env)
                if not env.is_running():
                    return  # stopped while held
            real = clock.waited(wait_seconds)
            if real > 0:
                # The interpreter sets this event to interrupt a wait (stop/abort).
                env.program_state_event.wait(real)
            clock.mark()

        original_delay = ExponentialBackoff.delay_amount
        original_with_timeout = ExecutionState._evaluate_with_timeout

        def evaluate_with_timeout(self: ExecutionState, env: Any) -> None:
            # A task that waits for a task token (an approval) waits in AWS time: its TimeoutSeconds
            # is compressed like a Wait. Other tasks keep their real timeouts (the handlers run for real).
            resource = getattr(self, "resource", None)
            timeout = self.timeout
            if getattr(resource, "condition", None) != ResourceCondition.WaitForTaskToken or not isinstance(
                timeout, TimeoutSeconds
            ):
                original_with_timeout(self, env)
                return
            # At least CALLBACK_FLOOR_SECONDS, so that a user (the runner, a test) has time to answer.
            real = max(CALLBACK_FLOOR_SECONDS, timeout.timeout_seconds * clock.scale)
            self.timeout = TimeoutSeconds(timeout_seconds=real)  # type: ignore[arg-type]
            try:
                original_with_timeout(self, env)
            except EvalTimeoutError:
                clock.waited(timeout.timeout_seconds)
                clock.mark()
                raise
            finally:
                self.timeout = timeout

        def delay_amount(self: ExponentialBackoff, context: Any) -> float:
            return float(original_delay(self, context)) * clock.scale

        scaled_time = types.SimpleNamespace(sleep=clock.sleep, time=time.time)
        with (
            mock.patch.object(WaitFunction, "_wait_interval", wait_interval),
            mock.patch.object(retrier_decl, "time", scaled_time),
            mock.patch.object(ExponentialBackoff, "delay_amount", delay_amount),
            mock.patch.object(ExecutionState, "_evaluate_with_timeout", evaluate_with_timeout),
        ):
            yield self
