"""The one table from S3 failures to transient/permanent, and the messages it writes."""

from __future__ import annotations

import http.client

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from urllib3.exceptions import ProtocolError

from portability.destinations._errors import Kind, Where, classify, is_missing, translate
from portability.destinations.s3 import S3Config, S3Destination
from portability.errors import (
    DestinationPermanentError,
    DestinationTransientError,
    FailureReason,
    ValidationError,
)

WHERE = Where(bucket="exports", endpoint="http://s3.example:9000", key="u/posts/part-1")


def client_error(code: str, status: int, message: str = "") -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("InternalError", 500),
        ("RequestTimeout", 400),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("NoSuchUpload", 404),
        ("", 502),
        ("SomethingNew", 504),
        ("TooManyRequests", 429),
        ("", 408),
    ],
)
def test_server_trouble_and_throttling_are_transient(code, status):
    error = translate(client_error(code, status, "try later"), WHERE)

    assert type(error) is DestinationTransientError
    assert (error.is_transient, error.reason) == (True, FailureReason.DESTINATION_TRANSIENT)


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        (
            "NoSuchBucket",
            404,
            "bucket 'exports' does not exist at http://s3.example:9000: create it or fix the "
            "destination's bucket name",
        ),
        ("AccessDenied", 403, "access denied to bucket 'exports' at http://s3.example:9000"),
        ("InvalidAccessKeyId", 403, "fix the access key id"),
        ("SignatureDoesNotMatch", 403, "fix the secret access key"),
        ("InvalidBucketName", 400, "fix the destination's bucket name"),
        ("AllAccessDisabled", 403, "all access to bucket 'exports'"),
        ("AuthorizationHeaderMalformed", 400, "fix the destination's region"),
        ("PermanentRedirect", 301, "fix the destination's region or endpoint URL"),
        ("SomeOther403", 403, "check the destination's credentials and the bucket policy"),
        ("", 404, "check the destination's bucket name, endpoint URL and addressing style"),
        ("InvalidArgument", 400, "(HTTP 400 InvalidArgument)"),
    ],
)
def test_configuration_mistakes_are_permanent_and_say_what_to_fix(code, status, says):
    error = translate(client_error(code, status, "bad header"), WHERE)

    assert type(error) is DestinationPermanentError
    assert error.reason == FailureReason.DESTINATION_PERMANENT
    assert says in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://s3.example:9000"),
        ConnectTimeoutError(endpoint_url="http://s3.example:9000"),
        ReadTimeoutError(endpoint_url="http://s3.example:9000"),
        ConnectionClosedError(endpoint_url="http://s3.example:9000"),
        ResponseStreamingError(error="connection broken"),
        IncompleteReadError(actual_bytes=3, expected_bytes=10),
        ProtocolError("Connection aborted.", ConnectionResetError()),
        http.client.IncompleteRead(b"abc"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_network_failures_are_transient_and_name_the_endpoint(exc):
    error = translate(exc, WHERE)

    assert type(error) is DestinationTransientError
    assert "http://s3.example:9000" in str(error)


def test_a_tls_failure_is_permanent_and_points_at_the_endpoint():
    error = translate(
        SSLError(endpoint_url="https://s3.example", error=ValueError("bad certificate")), WHERE
    )

    assert type(error) is DestinationPermanentError
    assert "fix the endpoint URL or its certificate" in str(error)


def test_a_request_botocore_refuses_to_build_is_permanent():
    error = translate(ParamValidationError(report="Invalid bucket name"), WHERE)

    assert type(error) is DestinationPermanentError


SERVER_TEXT = "Could not connect to 10.0.0.7:5432: PostgreSQL says FATAL password authentication"


@pytest.mark.parametrize(
    "exc",
    [
        client_error("InvalidArgument", 400, SERVER_TEXT),
        client_error("InternalError", 500, SERVER_TEXT),
        client_error("AccountProblem", 403, SERVER_TEXT),
        client_error("", 418, SERVER_TEXT),
        client_error("", 502, SERVER_TEXT),
        EndpointConnectionError(endpoint_url=SERVER_TEXT),
        SSLError(endpoint_url="https://s3.example", error=ValueError(SERVER_TEXT)),
        ConnectionResetError(SERVER_TEXT),
        OSError(SERVER_TEXT),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_a_servers_own_text_is_kept_for_staff_and_never_shown_to_the_developer(exc):
    error = translate(exc, WHERE)

    assert (SERVER_TEXT in str(error), SERVER_TEXT in (error.detail or "")) == (False, True)


def test_the_developer_reads_our_words_and_the_s3_error_code():
    error = translate(client_error("AccountProblem", 403, SERVER_TEXT), WHERE)

    assert str(error) == (
        "the account owning bucket 'exports' at http://s3.example:9000 has a problem "
        "(AccountProblem): resolve it with the storage provider"
    )


def test_unknown_codes_fall_back_on_the_status():
    assert [classify("Unheard", status) for status in (500, 503, 429, 400, 403, 404)] == [
        Kind.TRANSIENT,
        Kind.TRANSIENT,
        Kind.TRANSIENT,
        Kind.PERMANENT,
        Kind.PERMANENT,
        Kind.PERMANENT,
    ]


def test_a_missing_key_is_told_apart_from_a_missing_bucket():
    assert [
        is_missing(client_error("NoSuchKey", 404)),
        is_missing(client_error("404", 404)),
        is_missing(client_error("NoSuchBucket", 404)),
    ] == [True, True, False]


def test_the_destination_raises_the_translation_from_the_boto_error():
    destination = S3Destination(
        S3Config(bucket="exports", access_key_id="id", secret_access_key="secret")
    )
    original = client_error("NoSuchBucket", 404)

    with pytest.raises(DestinationPermanentError) as caught, destination._seam("k"):
        raise original

    assert caught.value.__cause__ is original
    assert "AWS S3 (us-east-1)" in str(caught.value)


def test_errors_that_are_not_s3_failures_pass_through_the_seam_untouched():
    destination = S3Destination(
        S3Config(bucket="exports", access_key_id="id", secret_access_key="secret")
    )

    with pytest.raises(KeyError), destination._seam("k"):
        raise KeyError("a bug stays a bug")


@pytest.mark.parametrize(
    "overrides",
    [
        {"bucket": ""},
        {"secret_access_key": ""},
        {"checksum_mode": "always"},
        {"addressing_style": "sideways"},
        {"multipart_chunk_bytes": 1024},
        {"max_attempts": 0},
    ],
    ids=lambda overrides: next(iter(overrides)),
)
def test_an_invalid_config_is_refused_up_front(overrides):
    values = {"bucket": "exports", "access_key_id": "id", "secret_access_key": "secret"}

    with pytest.raises(ValidationError):
        S3Config(**{**values, **overrides})
