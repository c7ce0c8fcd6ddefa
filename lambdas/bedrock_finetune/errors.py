"""Typed errors raised by the pipeline's Lambdas.

The state machine's Retry and Catch rules match these class names (the Lambda runtime reports an
unhandled exception's class name as the error type), so renaming one is a breaking change:
``stacks/workflow.py`` imports the names from here.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a failure the pipeline understands and reports with guidance."""


class DatasetInvalid(PipelineError):
    """The run's dataset or hyperparameters failed validation; the report says what to fix."""


class RunNotFound(PipelineError):
    """The run's training object no longer exists (deleted or overwritten before the run started)."""


class BedrockTransientError(PipelineError):
    """Bedrock throttled or had a server error; safe to retry with back-off."""


class BedrockPermanentError(PipelineError):
    """Bedrock rejected the request for a reason a retry cannot fix (validation, access, not found)."""


class BedrockQuotaExceeded(BedrockPermanentError):
    """A Service Quota is exhausted (for example, no model units for Provisioned Throughput)."""


#: Error names the state machine retries with exponential back-off and jitter.
TRANSIENT_ERRORS: tuple[str, ...] = (BedrockTransientError.__name__,)

#: Error names that fail the run at once, without retry.
PERMANENT_ERRORS: tuple[str, ...] = (
    DatasetInvalid.__name__,
    RunNotFound.__name__,
    BedrockPermanentError.__name__,
    BedrockQuotaExceeded.__name__,
)
