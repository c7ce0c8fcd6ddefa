"""SNS failures on demand: the scenario's ``publish_errors`` answer the first Publish calls.

moto's SNS publishes every message; a scenario can make the first calls fail, one error each, in
order, as SNS does during a brief outage (``InternalError``, HTTP 500) or when it throttles
(``Throttled``, HTTP 429). A *call* is one API call of a client with all its retries: the AWS SDKs
send the same ``amz-sdk-invocation-id`` header on every attempt of a call, so boto3's own retries
inside a handler get the same error (the outage outlasts them) and the handler sees the call fail
once. Requests without that header count as calls of their own. Later calls publish as usual.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

from moto.sns.exceptions import SNSException
from moto.sns.responses import SNSResponse

from finetune.local.scenarios import Scenario


class PublishError(SNSException):
    """An SNS error answer with its own code and HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code, message)
        self.status = status


class PublishFailures:
    """The errors still to answer, and the requests that got one."""

    def __init__(self, scenario: Scenario) -> None:
        self._pending = list(scenario.publish_errors)
        self._failing: dict[str, tuple[str, str, int]] = {}
        self._lock = threading.Lock()
        #: (error code, topic ARN, subject) of each failed request, in order (retries included).
        self.failed: list[tuple[str, str, str]] = []

    def next_error(self, invocation_id: str | None, topic_arn: str, subject: str) -> PublishError | None:
        """The error for this request: its call's, or the next pending one for a new call."""
        with self._lock:
            error = self._failing.get(invocation_id) if invocation_id else None
            if error is None:
                if not self._pending:
                    return None
                error = self._pending.pop(0)
                if invocation_id:
                    self._failing[invocation_id] = error
            self.failed.append((error[0], topic_arn, subject))
        return PublishError(*error)

    @contextlib.contextmanager
    def installed(self) -> Iterator[PublishFailures]:
        """Answer Publish requests with the pending errors first, while the context is open."""
        failures = self
        original = SNSResponse.publish

        def publish(self: SNSResponse) -> Any:
            error = failures.next_error(
                self.headers.get("amz-sdk-invocation-id"),
                str(self._get_param("TopicArn") or self._get_param("TargetArn") or ""),
                str(self._get_param("Subject") or ""),
            )
            if error is not None:
                raise error
            return original(self)

        with mock.patch.object(SNSResponse, "publish", publish):
            yield self
