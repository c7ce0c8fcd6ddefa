"""Customization jobs that take emulated time, and the events their ends send.

On AWS a job runs for hours whether anyone looks at it or not, and Bedrock sends a "Model
Customization Job State Change" event to the default bus at each change (best effort). Here a
:class:`JobTimer` runs each job for the scenario's ``job_hours`` of emulated time (compressed by the
clock's scale, as Wait states are): its status follows the scenario's ``job_transitions``, evenly
spread over that time, and every change goes through the deployed rules as Bedrock's event. With the
scenario's ``job_event_lost`` the events are dropped, as a best-effort delivery may; the deployed
fallback rule (a schedule) then fires at its next tick after the job's end, in emulated time.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.events.models import events_backends

from finetune.local import bedrock
from finetune.local.events import EventRouter
from finetune.local.scenarios import Scenario
from finetune.local.timing import Clock

#: How long (emulated) a stopped job stays Stopping before it is Stopped, when nobody describes it.
STOPPING_SECONDS = 60
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours)\)$")


def scheduled_event(account: str, region: str, rule_arn: str) -> dict[str, Any]:
    """The event an EventBridge schedule rule sends its targets."""
    return {
        "version": "0",
        "id": f"scheduled-{datetime.now(UTC).timestamp()}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def rate_seconds(expression: str) -> int:
    """``rate(10 minutes)`` -> 600."""
    match = _RATE.match(expression)
    if match is None:
        raise ValueError(f"not a rate expression the emulation runs: {expression!r}")
    return int(match.group(1)) * (3600 if match.group(2).startswith("hour") else 60)


@dataclass
class JobTimer:
    """Runs the emulated jobs on the emulation's clock and sends their state-change events."""

    clock: Clock
    router: EventRouter
    scenario: Scenario
    #: The fallback rule's name fragment (its construct id): the schedule that wakes runs whose job's
    #: event was lost.
    fallback_rule: str = "FallbackCheck"
    #: What happened, in order: ``(emulated seconds, what)``.
    log: list[tuple[float, str]] = field(default_factory=list)
    #: When each job ended: job ARN -> emulated seconds (the clock's) at its end.
    ended: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def started(self, job: bedrock.EmulatedJob) -> None:
        """A job was created: run it for the scenario's ``job_hours``, then end it."""
        total = self.scenario.job_hours * 3600
        if not math.isfinite(total):
            return  # a job that trains on until someone stops it
        steps = [to for _, to in self.scenario.job_transitions]
        at = [total * (i + 1) / len(steps) for i in range(len(steps))]
        delays = [b - a for a, b in zip([0.0, *at], at, strict=False)]
        self._run(self._progress, job, list(zip(delays, steps, strict=True)))

    def stopping(self, job: bedrock.EmulatedJob) -> None:
        """StopModelCustomizationJob: Stopped a minute later, unless a describe gets there first."""
        self._run(self._progress, job, [(STOPPING_SECONDS, "Stopped")])

    def status_changed(self, job: bedrock.EmulatedJob) -> None:
        """Bedrock sends the state-change event (from its own thread, as AWS sends it asynchronously)."""
        if job.ended:
            self.ended[job.job_arn] = self.clock.aws_seconds
        self.log.append((self.clock.aws_seconds, f"{job.params['jobName']} {job.reported_status}"))
        if self.scenario.job_event_lost:
            if job.ended:
                self._run(self._fallback_check, job)
            return
        event = bedrock.job_state_change_event(job)
        self._run(lambda: self.router.put_event(job.account, job.region, event))

    def close(self) -> None:
        """Stop every timer (the emulation closes)."""
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _run(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _wait(self, seconds: float) -> bool:
        """Let ``seconds`` of emulated time pass; False if the emulation closed meanwhile."""
        if self._stop.wait(self.clock.waited(seconds)):
            return False
        self.clock.mark()
        return True

    def _progress(self, job: bedrock.EmulatedJob, steps: list[tuple[float, str]]) -> None:
        state = bedrock.state_for(job.account, job.region)
        for delay, status in steps:
            if not self._wait(delay) or job.ended or not job.timed:
                return  # the emulation closed, the job ended, or a test took it off the clock
            if job.reported_status == "Stopping" and status != "Stopped":
                return  # stopped by someone: the stop's own timer ends it
            job.set_status(status, state)

    def _fallback_check(self, job: bedrock.EmulatedJob) -> None:
        """The job's end event was lost: the fallback schedule fires at its next tick after the end
        (ticks every ``rate`` from the job's creation), and its targets get the scheduled event."""
        backend = events_backends[job.account][job.region]
        bus = backend.event_buses.get("default")
        rules = [
            r
            for r in (bus.rules.values() if bus else [])
            if self.fallback_rule in r.name and r.scheduled_expression and r.state == "ENABLED"
        ]
        if not rules:
            self.log.append((self.clock.aws_seconds, "no fallback rule is deployed"))
            return
        rule = rules[0]
        rate = rate_seconds(str(rule.scheduled_expression))
        elapsed = self.scenario.job_hours * 3600
        if not self._wait(rate - elapsed % rate if elapsed % rate else 0):
            return
        self.log.append((self.clock.aws_seconds, f"fallback rule {rule.name} fired"))
        self.router.fire_rule(
            job.account, job.region, rule, scheduled_event(job.account, job.region, rule.arn)
        )
