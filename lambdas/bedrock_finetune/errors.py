"""Typed errors raised by the pipeline's Lambdas, and the one table that classifies AWS errors.

The state machine's Retry and Catch rules match these class names (the Lambda runtime reports an
unhandled exception's class name as the error type), so renaming one is a breaking change:
``stacks/workflow.py`` imports the names from here.

Every failed AWS call becomes exactly one typed error through :func:`classify`: its error code is
looked up in :data:`ERROR_CODES` (retry, fail, or quota, with what to do about it), a client-side
botocore error in :data:`BOTOCORE_ERRORS`. Calls to Bedrock raise the ``Bedrock*`` types (the logic
modules classify them where they make the call); any other AWS error that escapes a use case is
classified once, by the handler layer, into the service-neutral ``Aws*`` types.

Sources for the codes: the error shapes of each operation the pipeline calls in botocore's service
models (tests/unit/test_errors.py checks that every one has a row), the AWS common errors
(https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html), the S3 error codes
(https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList), and the
throttling and transient codes of botocore's standard retry mode
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ChecksumError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    DataNotFoundError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    UnknownServiceError,
)


class PipelineError(Exception):
    """Base class: a failure the pipeline understands and reports with guidance."""


class DatasetInvalid(PipelineError):
    """The run's dataset or hyperparameters failed validation; the report says what to fix."""


class QualityGateNotMet(PipelineError):
    """What training achieved is below the configured quality gate (or it had nothing to measure): the
    custom model is kept and nothing is bought; the training report has the losses."""


class RunNotFound(PipelineError):
    """The run's training object no longer exists (deleted or overwritten before the run started)."""


class BedrockTransientError(PipelineError):
    """Bedrock throttled or had a server error, or the network failed; safe to retry with back-off."""


class BedrockPermanentError(PipelineError):
    """Bedrock rejected the request for a reason a retry cannot fix (validation, access, not found)."""


class BedrockQuotaExceeded(BedrockPermanentError):
    """A Service Quota is exhausted (for example, no model units for Provisioned Throughput)."""


class QuotaWaitExpired(PipelineError):
    """A run waited as long as allowed for a quota (a training slot, Bedrock's concurrent jobs, a
    deployment) and gave up; nothing was bought for it."""


class AwsTransientError(PipelineError):
    """Another AWS service (S3, SNS, Step Functions, KMS...) throttled or had a server error, or the
    network failed; safe to retry with back-off."""


class AwsPermanentError(PipelineError):
    """Another AWS service rejected the request for a reason a retry cannot fix, or botocore could
    not make the call at all (invalid parameters, no credentials, unknown service)."""


class AwsQuotaExceeded(AwsPermanentError):
    """A Service Quota of another AWS service is exhausted."""


#: Error names the state machine retries with exponential back-off and jitter.
TRANSIENT_ERRORS: tuple[str, ...] = (BedrockTransientError.__name__, AwsTransientError.__name__)

#: Error names that fail the run at once, without retry.
PERMANENT_ERRORS: tuple[str, ...] = (
    DatasetInvalid.__name__,
    RunNotFound.__name__,
    BedrockPermanentError.__name__,
    BedrockQuotaExceeded.__name__,
    QuotaWaitExpired.__name__,
    AwsPermanentError.__name__,
    AwsQuotaExceeded.__name__,
)


class Outcome(StrEnum):
    """What the pipeline does about an error."""

    RETRY = "retry"  #: transient: the state machine retries the task with back-off
    FAIL = "fail"  #: permanent: the run fails at once, with the guidance
    QUOTA = "quota"  #: permanent, and the fix is a Service Quota increase


@dataclass(frozen=True)
class ErrorFamily:
    """The typed errors one kind of call raises, by outcome."""

    transient: type[PipelineError]
    permanent: type[PipelineError]
    quota: type[PipelineError]

    def error_type(self, outcome: Outcome) -> type[PipelineError]:
        return {Outcome.RETRY: self.transient, Outcome.FAIL: self.permanent, Outcome.QUOTA: self.quota}[
            outcome
        ]


#: Calls to Bedrock.
BEDROCK = ErrorFamily(BedrockTransientError, BedrockPermanentError, BedrockQuotaExceeded)
#: Calls to any other AWS service.
AWS = ErrorFamily(AwsTransientError, AwsPermanentError, AwsQuotaExceeded)


@dataclass(frozen=True)
class Rule:
    """One row of the table: the outcome, and what to do about it (``by_action`` refines it)."""

    outcome: Outcome
    guidance: str
    by_action: Mapping[str, str] = field(default_factory=dict)

    def guidance_for(self, action: str) -> str:
        return self.by_action.get(action, self.guidance)

    @property
    def retried(self) -> bool:
        return self.outcome is Outcome.RETRY


def _table(*groups: tuple[Rule, tuple[str, ...]]) -> dict[str, Rule]:
    table: dict[str, Rule] = {}
    for rule, codes in groups:
        for code in codes:
            if code in table:
                raise ValueError(f"error code {code} has two rows")
            table[code] = rule
    return table


_RETRIED = "retried with back-off (if it persists, see the AWS Health Dashboard)"
_THROTTLED = Rule(Outcome.RETRY, f"Throttled (over the service's request rate); {_RETRIED}.")
_SERVER = Rule(Outcome.RETRY, f"The service had an internal error or was unavailable; {_RETRIED}.")
_TIMEOUT = Rule(Outcome.RETRY, f"The request timed out before the service answered; {_RETRIED}.")
_RACED = Rule(
    Outcome.RETRY,
    f"Another request changed the same item at the same moment (the training queue's table); {_RETRIED}.",
)
_EXPIRED = Rule(
    Outcome.RETRY,
    "The request's signature or temporary credentials expired before the service read it; a new "
    "attempt signs with fresh credentials.",
)
_ACCESS = Rule(
    Outcome.FAIL,
    "Access denied. For Bedrock, check that model access to the base model is enabled in this region "
    "(Bedrock console, Model access); otherwise check the function's role (make iam-report), the KMS key "
    "policy, and any SCP or permissions boundary that denies the call.",
)
_CREDENTIALS = Rule(
    Outcome.FAIL,
    "The call was signed with credentials AWS does not accept (unknown key, bad signature, or the "
    "region is not enabled for the account).",
)
_INVALID = Rule(
    Outcome.FAIL,
    "The request was rejected as invalid; the message names the field. Check the base model id and "
    "region, the hyperparameters, the dataset URIs and the configured names and ARNs.",
)
_NOT_FOUND = Rule(
    Outcome.FAIL,
    "The resource does not exist (deleted, or in another region or account). Check the bucket, key, "
    "topic or ARN in the message.",
)
_ARCHIVED = Rule(
    Outcome.FAIL, "The object is in an archive storage class; restore it (or upload it again) and re-run."
)
_CONFLICT = Rule(
    Outcome.FAIL,
    "Another operation on the same resource is in progress, or the resource is in a state that does "
    "not allow this (a job that is already stopping, a throughput that is still Creating).",
)
_CONDITION = Rule(
    Outcome.FAIL,
    "A write to the training queue's table was refused in a way its code does not expect (the queue "
    "handles a lost race itself); see the message.",
)
_KEY_UNUSABLE = Rule(
    Outcome.FAIL,
    "The KMS key cannot be used: it is disabled, pending deletion, or not valid for this operation. "
    "Enable it, or check the configured kms_key_arn.",
)
_TAGS = Rule(Outcome.FAIL, "Too many tags: reduce the configured resource tags (`tags` in cdk.json).")
_PUSH = Rule(Outcome.FAIL, "The SNS endpoint or platform application is disabled (mobile push targets).")
_QUOTA = Rule(
    Outcome.QUOTA,
    "A Service Quota is exhausted (for Bedrock model customization, for example concurrent jobs or "
    "records per job). Check Service Quotas for the service, or wait for running jobs to end.",
    by_action={
        "CreateProvisionedModelThroughput": (
            "Your account has no model units left for Provisioned Throughput of this model. Model units "
            "must be requested from AWS Support first (Service Quotas, Amazon Bedrock: 'Model units "
            "no-commitment Provisioned Throughputs across custom models', or a commitment term). The "
            "custom model is kept; buy throughput for it once the quota is granted."
        )
    },
)

#: Every AWS error code that can reach the pipeline's calls (Bedrock, S3, SNS, Step Functions,
#: Service Quotas, CloudFormation, DynamoDB, and the STS and KMS codes those pass on), by what to do
#: about it.
#: Codes that are bare HTTP statuses are what S3 answers to HEAD requests, which have no error body.
ERROR_CODES: Mapping[str, Rule] = _table(
    (
        _THROTTLED,
        (
            "ThrottlingException",  # Bedrock, KMS, common
            "Throttling",  # CloudFormation, STS
            "ThrottledException",
            "Throttled",  # SNS
            "TooManyRequestsException",  # Service Quotas
            "RequestThrottled",
            "RequestThrottledException",
            "RequestLimitExceeded",
            "LimitExceededException",  # KMS request quotas
            "ProvisionedThroughputExceededException",  # DynamoDB
            "BandwidthLimitExceeded",
            "SlowDown",  # S3 (503)
            "PriorRequestNotComplete",
            "KMSThrottling",  # SNS, for the topic's key
            "KmsThrottlingException",  # Step Functions, for the execution's key
            "429",
        ),
    ),
    (
        _SERVER,
        (
            "InternalServerException",  # Bedrock (500)
            "InternalServerError",
            "InternalError",  # S3 and SNS (500)
            "InternalFailure",  # common (500)
            "ServiceException",  # Service Quotas
            "ServiceUnavailable",  # S3 and common (503)
            "ServiceUnavailableException",
            "KMSInternalException",
            "KeyUnavailableException",  # KMS (500)
            "DependencyTimeoutException",  # KMS (503)
            "IDPCommunicationError",  # STS
            "500",
            "502",
            "503",
            "504",
        ),
    ),
    (_TIMEOUT, ("RequestTimeout", "RequestTimeoutException", "RequestAbortedException")),
    (
        _RACED,
        (
            "TransactionConflictException",  # DynamoDB: a transaction held the same item
            "ReplicatedWriteConflictException",
        ),
    ),
    (_EXPIRED, ("ExpiredToken", "ExpiredTokenException", "RequestExpired")),
    (
        _ACCESS,
        (
            "AccessDeniedException",  # Bedrock, KMS, Service Quotas, common
            "AccessDenied",  # S3
            "AuthorizationError",  # SNS
            "InvalidSecurity",  # SNS
            "NotAuthorized",
            "OptInRequired",
            "KMSAccessDenied",  # SNS, for the topic's key
            "KMSOptInRequired",  # SNS
            "KmsAccessDeniedException",  # Step Functions, for the execution's key
            "403",
        ),
    ),
    (
        _CREDENTIALS,
        (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidAccessKeyId",  # S3
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "RegionDisabledException",  # STS
        ),
    ),
    (
        _INVALID,
        (
            "ValidationException",  # Bedrock, SNS, common
            "ValidationError",  # CloudFormation (also: the stack does not exist)
            "InvalidParameter",  # SNS
            "ParameterValueInvalid",  # SNS
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "MissingParameter",
            "IllegalArgumentException",  # Service Quotas
            "InvalidPaginationTokenException",  # Service Quotas
            "InvalidArn",  # Step Functions
            "InvalidRequest",  # S3
            "InvalidArgument",  # S3
            "EncryptionTypeMismatch",  # S3
            "InvalidWriteOffset",  # S3
            "TooManyParts",  # S3
            "EntityTooLarge",  # S3
            "MalformedHttpRequestException",
            "UnknownOperationException",
            "400",
        ),
    ),
    (
        _NOT_FOUND,
        (
            "ResourceNotFoundException",  # Bedrock
            "NoSuchKey",  # S3
            "NoSuchBucket",  # S3
            "NoSuchVersion",  # S3
            "NotFound",  # SNS (and S3 HEAD)
            "NotFoundException",  # KMS
            "KMSNotFound",  # SNS
            "ExecutionDoesNotExist",  # Step Functions
            "NoSuchResourceException",  # Service Quotas
            "404",
        ),
    ),
    (_ARCHIVED, ("InvalidObjectState", "ObjectNotInActiveTierError")),
    (_CONFLICT, ("ConflictException", "PreconditionFailed", "412")),
    (
        _CONDITION,
        (
            "ConditionalCheckFailedException",  # DynamoDB
            "ItemCollectionSizeLimitExceededException",
        ),
    ),
    (
        _KEY_UNUSABLE,
        (
            "DisabledException",  # KMS
            "KMSDisabled",  # SNS
            "KMSInvalidStateException",  # KMS
            "KMSInvalidState",  # SNS
            "KmsInvalidStateException",  # Step Functions
            "InvalidKeyUsageException",
            "IncorrectKeyException",
            "InvalidCiphertextException",
            "InvalidGrantTokenException",
        ),
    ),
    (_TAGS, ("TooManyTagsException",)),
    (_PUSH, ("EndpointDisabled", "PlatformApplicationDisabled")),
    (_QUOTA, ("ServiceQuotaExceededException",)),
)

#: Errors botocore raises without an answer from AWS, by class (the most specific one applies).
#: Network failures are transient; every other botocore error can never succeed on retry.
BOTOCORE_ERRORS: Mapping[type[BotoCoreError], Rule] = {
    # ConnectionError: EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError, SSLError.
    # HTTPClientError: ReadTimeoutError, ConnectionClosedError, ResponseStreamingError.
    ConnectionError: Rule(Outcome.RETRY, f"Network error: the AWS endpoint was not reached; {_RETRIED}."),
    HTTPClientError: Rule(Outcome.RETRY, f"Network error: the connection failed or timed out; {_RETRIED}."),
    IncompleteReadError: Rule(Outcome.RETRY, f"The response was cut short in transit; {_RETRIED}."),
    ChecksumError: Rule(Outcome.RETRY, f"The response was corrupted in transit; {_RETRIED}."),
    FlexibleChecksumError: Rule(Outcome.RETRY, f"The response was corrupted in transit; {_RETRIED}."),
    CapacityNotAvailableError: Rule(
        Outcome.RETRY, f"boto3's retry budget is spent on recent failures; {_RETRIED}."
    ),
    ParamValidationError: Rule(
        Outcome.FAIL,
        "botocore rejected the request before sending it (a parameter is missing, of the wrong type or "
        "out of range): a bug or a configured value the API does not accept. The message names it.",
    ),
    NoCredentialsError: Rule(Outcome.FAIL, "The function has no AWS credentials; check its execution role."),
    PartialCredentialsError: Rule(Outcome.FAIL, "The function's AWS credentials are incomplete."),
    CredentialRetrievalError: Rule(Outcome.FAIL, "The function's AWS credentials could not be loaded."),
    NoRegionError: Rule(Outcome.FAIL, "No AWS region is set for the client (AWS_REGION)."),
    UnknownServiceError: Rule(
        Outcome.FAIL, "The bundled botocore does not know this service; update the Lambda's boto3."
    ),
    DataNotFoundError: Rule(Outcome.FAIL, "The bundled botocore lacks this service's model; update boto3."),
    BotoCoreError: Rule(Outcome.FAIL, "botocore could not make this call; a retry cannot fix it."),
}

_UNKNOWN_CODE = Rule(Outcome.FAIL, "See the message from AWS.")


@dataclass(frozen=True)
class Decision:
    """How one failed call is handled: the rule that applies, and the code and message it carried."""

    rule: Rule
    code: str
    message: str

    @property
    def retried(self) -> bool:
        return self.rule.retried


def decide(exc: BaseException) -> Decision:
    """Look ``exc`` up: by error code for an answer from AWS, by class for a botocore error.

    An error code not in :data:`ERROR_CODES` is retried when its HTTP status is 429 or 5xx, else fails.
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        rule = ERROR_CODES.get(code)
        if rule is None:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status >= 500:
                rule = _SERVER
            elif status == 429:
                rule = _THROTTLED
            else:
                rule = _UNKNOWN_CODE
        return Decision(rule, code, message)
    if isinstance(exc, BotoCoreError):
        kind = next(k for k in type(exc).__mro__ if k in BOTOCORE_ERRORS)
        return Decision(BOTOCORE_ERRORS[kind], type(exc).__name__, str(exc))
    return Decision(_UNKNOWN_CODE, type(exc).__name__, str(exc))


def classify(exc: BaseException, action: str, family: ErrorFamily = AWS) -> PipelineError:
    """The typed error for a failure of ``action`` (an AWS operation name), with its guidance.

    ``family`` picks the names: :data:`BEDROCK` for Bedrock calls, :data:`AWS` for the rest.
    """
    if isinstance(exc, PipelineError):
        return exc
    decision = decide(exc)
    said = f"{decision.code}: {decision.message}" if decision.message else decision.code
    return family.error_type(decision.rule.outcome)(f"{action}: {said}. {decision.rule.guidance_for(action)}")
