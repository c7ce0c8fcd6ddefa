"""The one error table: every AWS error code the pipeline can meet maps to retry, fail or quota."""

from __future__ import annotations

import inspect

import botocore.exceptions as botocore_errors
import botocore.session
import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    UnknownServiceError,
)

from bedrock_finetune.errors import (
    AWS,
    BEDROCK,
    ERROR_CODES,
    PERMANENT_ERRORS,
    TRANSIENT_ERRORS,
    AwsPermanentError,
    AwsQuotaExceeded,
    AwsTransientError,
    BedrockPermanentError,
    BedrockQuotaExceeded,
    BedrockTransientError,
    DatasetInvalid,
    ErrorFamily,
    Outcome,
    classify,
    decide,
)

# The expected decision for every code, written out independently of the table: a row added to or
# changed in ERROR_CODES must be added here too, so each decision is made twice, on purpose.
RETRIED = {
    # throttling
    "ThrottlingException", "Throttling", "ThrottledException", "Throttled", "TooManyRequestsException",
    "RequestThrottled", "RequestThrottledException", "RequestLimitExceeded", "LimitExceededException",
    "BandwidthLimitExceeded", "SlowDown", "PriorRequestNotComplete", "KMSThrottling",
    "KmsThrottlingException", "429",
    # server errors and timeouts
    "InternalServerException", "InternalServerError", "InternalError", "InternalFailure",
    "ServiceException", "ServiceUnavailable", "ServiceUnavailableException", "KMSInternalException",
    "KeyUnavailableException", "DependencyTimeoutException", "IDPCommunicationError",
    "500", "502", "503", "504", "RequestTimeout", "RequestTimeoutException", "RequestAbortedException",
    # credentials or signature that expired in flight
    "ExpiredToken", "ExpiredTokenException", "RequestExpired",
    # DynamoDB throttling and transaction conflicts (the training queue's table)
    "ProvisionedThroughputExceededException", "TransactionConflictException",
    "ReplicatedWriteConflictException",
}  # fmt: skip
FAILED = {
    # access and credentials
    "AccessDeniedException", "AccessDenied", "AuthorizationError", "InvalidSecurity", "NotAuthorized",
    "OptInRequired", "KMSAccessDenied", "KMSOptInRequired", "KmsAccessDeniedException", "403",
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "IncompleteSignature", "MissingAuthenticationToken", "RegionDisabledException",
    # invalid requests
    "ValidationException", "ValidationError", "InvalidParameter", "ParameterValueInvalid",
    "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter",
    "IllegalArgumentException", "InvalidPaginationTokenException", "InvalidArn", "InvalidRequest",
    "InvalidArgument", "EncryptionTypeMismatch", "InvalidWriteOffset", "TooManyParts", "EntityTooLarge",
    "MalformedHttpRequestException", "UnknownOperationException", "400", "TooManyTagsException",
    # missing, archived, conflicting
    "ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound",
    "NotFoundException", "KMSNotFound", "ExecutionDoesNotExist", "NoSuchResourceException", "404",
    "InvalidObjectState", "ObjectNotInActiveTierError", "ConflictException", "PreconditionFailed", "412",
    # unusable keys, disabled push endpoints
    "DisabledException", "KMSDisabled", "KMSInvalidStateException", "KMSInvalidState",
    "KmsInvalidStateException", "InvalidKeyUsageException", "IncorrectKeyException",
    "InvalidCiphertextException", "InvalidGrantTokenException", "EndpointDisabled",
    "PlatformApplicationDisabled",
    # DynamoDB conditions the queue code does not expect (it handles the ones it expects)
    "ConditionalCheckFailedException", "ItemCollectionSizeLimitExceededException",
}  # fmt: skip
QUOTA = {"ServiceQuotaExceededException"}

#: Every AWS operation the runtime code calls (grep lambdas/ for client calls), by botocore service.
#: KMS and STS are not called directly; their codes reach us through S3, SNS and request signing.
CALLED_OPERATIONS = {
    "bedrock": [
        "CreateModelCustomizationJob",
        "GetModelCustomizationJob",
        "StopModelCustomizationJob",
        "ListModelCustomizationJobs",
        "CreateProvisionedModelThroughput",
        "GetProvisionedModelThroughput",
        "DeleteProvisionedModelThroughput",
        "ListProvisionedModelThroughputs",
        "GetFoundationModel",
        "ListTagsForResource",
        "ListCustomModels",
        "DeleteCustomModel",
    ],
    "s3": ["GetObject", "HeadObject", "PutObject", "ListObjectsV2"],
    "sns": ["Publish"],
    "stepfunctions": ["DescribeExecution"],
    "service-quotas": ["ListServiceQuotas", "ListAWSDefaultServiceQuotas"],
    "cloudformation": ["DescribeStacks"],
    "dynamodb": ["GetItem", "PutItem"],
}


def _client_error(code: str, status: int = 400, operation: str = "Publish") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def test_the_expected_decisions_cover_exactly_the_table() -> None:
    assert RETRIED.isdisjoint(FAILED) and QUOTA.isdisjoint(RETRIED | FAILED)
    assert set(ERROR_CODES) - (RETRIED | FAILED | QUOTA) == set(), "new rows need an expected decision"
    assert (RETRIED | FAILED | QUOTA) - set(ERROR_CODES) == set(), "expected codes missing from the table"


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
@pytest.mark.parametrize("family", [BEDROCK, AWS], ids=["bedrock", "aws"])
def test_every_row_gives_its_typed_error_and_retry_decision(code: str, family: ErrorFamily) -> None:
    # Given an AWS answer with this code (status 400, so the code alone decides)
    error = classify(_client_error(code), "SomeOperation", family)
    # Then the typed error follows the expected decision, and the state machine retries it or not
    expected = Outcome.RETRY if code in RETRIED else Outcome.QUOTA if code in QUOTA else Outcome.FAIL
    assert type(error) is family.error_type(expected)
    assert (type(error).__name__ in TRANSIENT_ERRORS) is (expected is Outcome.RETRY)
    assert (type(error).__name__ in PERMANENT_ERRORS) is (expected is not Outcome.RETRY)
    # And the message names the call and the code, and says what to do
    assert str(error).startswith(f"SomeOperation: {code}: {code} happened. ")
    assert ERROR_CODES[code].guidance in str(error)


@pytest.mark.parametrize(
    ("service", "operation"), [(s, op) for s, ops in CALLED_OPERATIONS.items() for op in ops]
)
def test_every_error_an_operation_we_call_declares_has_a_row(service: str, operation: str) -> None:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    declared = {shape.error_code for shape in model.error_shapes}
    assert declared - set(ERROR_CODES) == set()


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SomethingNew", 500, AwsTransientError),
        ("SomethingNew", 503, AwsTransientError),
        ("SomethingNew", 429, AwsTransientError),
        ("SomethingNew", 400, AwsPermanentError),
        ("SomethingNew", 0, AwsPermanentError),
        # a row wins over the status: a 5xx whose code says it is permanent is not retried
        ("AccessDenied", 500, AwsPermanentError),
    ],
)
def test_a_code_outside_the_table_is_decided_by_its_status(
    code: str, status: int, expected: type[Exception]
) -> None:
    assert type(classify(_client_error(code, status), "PutObject")) is expected


NETWORK_ERRORS = [
    EndpointConnectionError(endpoint_url="https://sns.us-west-2.amazonaws.com"),
    ConnectTimeoutError(endpoint_url="https://s3.us-west-2.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://bedrock.us-west-2.amazonaws.com"),
    ConnectionClosedError(endpoint_url="https://s3.us-west-2.amazonaws.com"),
    ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"),
]


@pytest.mark.parametrize("exc", NETWORK_ERRORS, ids=lambda e: type(e).__name__)
def test_network_errors_are_transient(exc: BotoCoreError) -> None:
    assert type(classify(exc, "Publish")) is AwsTransientError
    assert type(classify(exc, "GetModelCustomizationJob", BEDROCK)) is BedrockTransientError
    assert decide(exc).retried


NEVER_SUCCEED = [
    ParamValidationError(report="Invalid type for parameter Message, value: None"),
    NoCredentialsError(),
    PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    NoRegionError(),
    UnknownServiceError(service_name="bedrok", known_service_names="bedrock"),
]


@pytest.mark.parametrize("exc", NEVER_SUCCEED, ids=lambda e: type(e).__name__)
def test_botocore_errors_that_can_never_succeed_are_permanent(exc: BotoCoreError) -> None:
    error = classify(exc, "CreateModelCustomizationJob", BEDROCK)
    assert type(error) is BedrockPermanentError
    assert type(classify(exc, "Publish")) is AwsPermanentError
    assert type(exc).__name__ in str(error)


def _botocore_error_classes() -> list[type[BotoCoreError]]:
    return [
        cls
        for _, cls in inspect.getmembers(botocore_errors, inspect.isclass)
        if issubclass(cls, BotoCoreError)
    ]


@pytest.mark.parametrize("cls", _botocore_error_classes(), ids=lambda c: c.__name__)
def test_only_network_and_in_transit_botocore_errors_are_retried(cls: type[BotoCoreError]) -> None:
    # Given any botocore error (built without its format arguments, which only shape the message)
    exc = cls.__new__(cls)
    Exception.__init__(exc, "message")
    # Then it is retried exactly when the network or the transfer failed
    in_transit = (
        botocore_errors.ConnectionError,
        botocore_errors.HTTPClientError,
        botocore_errors.IncompleteReadError,
        botocore_errors.ChecksumError,
        botocore_errors.FlexibleChecksumError,
        botocore_errors.CapacityNotAvailableError,
    )
    assert decide(exc).retried is issubclass(cls, in_transit)


def test_the_quota_row_tells_how_to_get_model_units_for_throughput() -> None:
    error = classify(
        _client_error("ServiceQuotaExceededException"), "CreateProvisionedModelThroughput", BEDROCK
    )
    assert type(error) is BedrockQuotaExceeded
    assert "must be requested from AWS Support" in str(error)
    assert type(classify(_client_error("ServiceQuotaExceededException"), "PutObject")) is AwsQuotaExceeded


def test_an_error_already_typed_passes_unchanged() -> None:
    invalid = DatasetInvalid("bad data")
    assert classify(invalid, "ValidateDataset") is invalid


def test_other_exceptions_are_permanent() -> None:
    assert type(classify(KeyError("jobArn"), "GetModelCustomizationJob", BEDROCK)) is BedrockPermanentError


def test_the_state_machine_retries_every_transient_type_and_no_permanent_one() -> None:
    assert set(TRANSIENT_ERRORS) == {BedrockTransientError.__name__, AwsTransientError.__name__}
    assert set(TRANSIENT_ERRORS).isdisjoint(PERMANENT_ERRORS)
