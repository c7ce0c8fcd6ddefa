"""What every handler shares: Powertools objects, typed settings from the environment, AWS clients,
and the conversion of AWS errors that escape a use case into the typed errors the state machine retries.

Every log line of an invocation about a run carries the run, its line, the uploaded version and the
execution, with the execution's name as the correlation id (:class:`PipelineLogger`), so one run's lines
can be found across every function's log group.

This is the only layer of the runtime code that reads ``os.environ``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bedrock_finetune.errors import classify
from bedrock_finetune.settings import Settings
from handlers._events import RUN_LOG_KEYS, execution_name, run_log_keys


class PipelineLogger(Logger):
    """Powertools' Logger whose ``inject_lambda_context`` (which every handler has) also puts the run's
    keys (:func:`handlers._events.run_log_keys`) on every line of the invocation and sets the correlation
    id to the run's execution name. Keys of the previous invocation are removed first: a warm function
    must not stamp one run's lines with another's."""

    def inject_lambda_context(self, lambda_handler: Any = None, *args: Any, **options: Any) -> Any:
        if lambda_handler is None:
            return functools.partial(self.inject_lambda_context, *args, **options)

        @functools.wraps(lambda_handler)
        def with_run_keys(event: Any, context: Any, *handler_args: Any, **handler_kwargs: Any) -> Any:
            self.remove_keys(list(RUN_LOG_KEYS))
            self.append_keys(**run_log_keys(event))
            self.set_correlation_id(execution_name(event))
            return lambda_handler(event, context, *handler_args, **handler_kwargs)

        return super().inject_lambda_context(with_run_keys, *args, **options)


class PowertoolsMetricSink:
    """:class:`bedrock_finetune.metrics.MetricSink` over Powertools: each metric is its own EMF document
    (``single_metric``), since its dimensions differ from those of the handler's other metrics."""

    def count(self, name: str, value: int, dimensions: Mapping[str, str]) -> None:
        with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
            for dimension, dimension_value in dimensions.items():
                metric.add_dimension(name=dimension, value=dimension_value)


logger = PipelineLogger()
metrics = Metrics()
metric_sink = PowertoolsMetricSink()

#: boto3's own retries (max_attempts counts retries: up to 4 requests) absorb brief throttling;
#: longer outages surface as transient pipeline errors
#: and are retried by the state machine with back-off and jitter.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, user_agent_extra="bedrock-finetune")

#: Where the state machine puts the execution name, used as the Powertools correlation id.
CORRELATION_ID_PATH = "executionName"

S = TypeVar("S", bound=Settings)
H = TypeVar("H", bound=Callable[..., Any])


class _LazyTracer:
    """Powertools' Tracer, created at the first invocation: the X-Ray SDK it loads (and the boto3
    patching it does) costs a fifth of a second, which module import (cold start) no longer pays."""

    def capture_lambda_handler(self, handler: H) -> H:
        """``@tracer.capture_lambda_handler``, as Powertools' own, applied on the first call."""
        traced: Callable[..., Any] | None = None

        @functools.wraps(handler)
        def invoke(event: Any, context: Any) -> Any:
            nonlocal traced
            if traced is None:
                from aws_lambda_powertools import Tracer  # noqa: PLC0415 - deliberately lazy, see above

                traced = Tracer().capture_lambda_handler(handler)
            return traced(event, context)

        return invoke  # type: ignore[return-value]


tracer = _LazyTracer()


def typed_errors(handler: H) -> H:
    """Turn an AWS error that escapes the use case (an S3, SNS, Step Functions... call; Bedrock calls
    are classified where they are made) into the typed error of :func:`bedrock_finetune.errors.classify`,
    so its class name tells the state machine whether to retry. Every other exception passes unchanged.
    """

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        except (ClientError, BotoCoreError) as exc:
            # botocore's own errors (network, parameters) carry no operation name: name the handler.
            action = getattr(exc, "operation_name", None) or f"AWS call in {handler.__module__}"
            raise classify(exc, action) from exc

    return invoke  # type: ignore[return-value]


def settings(kind: type[S]) -> S:
    """This function's typed settings, read from its environment (set by its construct)."""
    return kind.from_env(os.environ)


def client(service: str) -> Any:
    """A boto3 client; created per call so that tests and the local emulation control endpoints."""
    return boto3.client(service, config=_CLIENT_CONFIG)
