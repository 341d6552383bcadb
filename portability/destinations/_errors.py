"""The one seam where S3 failures become portability errors.

boto3 already retried what it considers retryable before an exception reaches us, so what we
decide here is what happens next: a ``DestinationTransientError`` makes the run retry later with
backoff; a ``DestinationPermanentError`` fails it at once with a message that tells the
developer what to fix in their destination (naming the bucket and endpoint, never the keys).

The table is keyed by the S3 error code first (``_CODES``), then by HTTP status for codes we
do not know, then by the botocore/urllib3 exception type for failures without a response.

A message is our own words plus the S3 error code: never the server's own text, nor a network
error's, which would let a developer probe what answers at an address. That raw text goes in
the error's ``detail``, stored for staff only (``runs.error_detail``).
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from enum import Enum

from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from urllib3.exceptions import HTTPError as URLLib3Error

from portability.errors import (
    DestinationError,
    DestinationPermanentError,
    DestinationTransientError,
)

__all__ = [
    "TRANSLATED",
    "Kind",
    "Where",
    "classify",
    "error_code",
    "http_status",
    "is_missing",
    "translate",
]


class Kind(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Where:
    """What a message names: the bucket, the endpoint and (when there is one) the key."""

    bucket: str
    endpoint: str
    key: str | None = None


_T, _P = Kind.TRANSIENT, Kind.PERMANENT

# S3 error code -> (kind, what the developer reads). Placeholders: {bucket} {endpoint}
# {key} {code} {status}; the server's message is kept out on purpose (see the docstring).
# Transient messages say what happened; permanent ones what to fix.
_CODES: dict[str, tuple[Kind, str]] = {
    # Throttling and server trouble: retry later.
    "SlowDown": (_T, "{endpoint} is throttling requests to bucket {bucket} ({code})"),
    "Throttling": (_T, "{endpoint} is throttling requests to bucket {bucket} ({code})"),
    "ThrottlingException": (_T, "{endpoint} is throttling requests to bucket {bucket} ({code})"),
    "RequestLimitExceeded": (_T, "{endpoint} is throttling requests to bucket {bucket} ({code})"),
    "TooManyRequests": (_T, "{endpoint} is throttling requests to bucket {bucket} ({code})"),
    "RequestTimeout": (_T, "{endpoint} timed out reading the request for bucket {bucket}"),
    "InternalError": (_T, "{endpoint} had an internal error on bucket {bucket} ({code})"),
    "ServiceUnavailable": (_T, "{endpoint} is unavailable for bucket {bucket} ({code})"),
    "OperationAborted": (_T, "a conflicting operation is in progress on bucket {bucket}"),
    "ConditionalRequestConflict": (_T, "a concurrent write to {key} in bucket {bucket}"),
    # The multipart upload vanished (aborted by a lifecycle rule or a concurrent abort):
    # the next attempt starts a new one.
    "NoSuchUpload": (_T, "the multipart upload of {key} in bucket {bucket} no longer exists"),
    # Our clock, not the developer's configuration: the operators fix time sync.
    "RequestTimeTooSkewed": (
        _T,
        "this host's clock differs too much from {endpoint}'s (RequestTimeTooSkewed): "
        "operators must fix time synchronisation",
    ),
    # Configuration the developer must fix.
    "NoSuchBucket": (
        _P,
        "bucket {bucket} does not exist at {endpoint}: create it or fix the destination's "
        "bucket name",
    ),
    "AccessDenied": (
        _P,
        "access denied to bucket {bucket} at {endpoint}: allow the destination's access key "
        "s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket and "
        "s3:AbortMultipartUpload on it",
    ),
    "AllAccessDisabled": (
        _P,
        "all access to bucket {bucket} at {endpoint} is disabled: re-enable it or register "
        "another bucket",
    ),
    "AccountProblem": (
        _P,
        "the account owning bucket {bucket} at {endpoint} has a problem ({code}): "
        "resolve it with the storage provider",
    ),
    "InvalidAccessKeyId": (
        _P,
        "the destination's access key id is not known at {endpoint}: fix the access key id "
        "of the destination for bucket {bucket}",
    ),
    "SignatureDoesNotMatch": (
        _P,
        "{endpoint} refused the request signature for bucket {bucket}: the destination's "
        "secret access key does not match its access key id; fix the secret access key",
    ),
    "ExpiredToken": (
        _P,
        "the destination's credentials for bucket {bucket} at {endpoint} have expired: "
        "register long-lived keys",
    ),
    "InvalidToken": (
        _P,
        "the destination's credentials for bucket {bucket} at {endpoint} are invalid: "
        "fix the access key id and secret access key",
    ),
    "InvalidBucketName": (
        _P,
        "bucket name {bucket} is not valid at {endpoint}: fix the destination's bucket name",
    ),
    "AuthorizationHeaderMalformed": (
        _P,
        "{endpoint} refused the request for bucket {bucket} ({code}): fix the destination's region",
    ),
    "PermanentRedirect": (
        _P,
        "bucket {bucket} is not served by {endpoint}: fix the destination's region or endpoint URL",
    ),
    "IllegalLocationConstraintException": (
        _P,
        "bucket {bucket} is in another region than the destination says: fix the region",
    ),
    "InvalidRequest": (
        _P,
        "{endpoint} refused a request for bucket {bucket} ({code}): check the "
        "destination's settings (server-side encryption, addressing style)",
    ),
    "KMS.DisabledException": (
        _P,
        "the KMS key for bucket {bucket} is disabled: enable it or change the destination's "
        "server-side encryption",
    ),
    "QuotaExceeded": (_P, "bucket {bucket} at {endpoint} is over its quota: free space"),
}

# Status codes we retry although the error code is unknown to us.
_TRANSIENT_STATUS = frozenset({408, 429})

# Unknown error code: what the message says, by status (0: any other permanent status).
_STATUS_TEMPLATES: dict[int, str] = {
    403: "{endpoint} refused the request for bucket {bucket} (HTTP 403 {code}): "
    "check the destination's credentials and the bucket policy",
    404: "bucket {bucket} or its endpoint {endpoint} was not found (HTTP 404 {code}): "
    "check the destination's bucket name, endpoint URL and addressing style",
    0: "{endpoint} refused a request for bucket {bucket} (HTTP {status} {code}): "
    "check the destination's settings",
}
_TRANSIENT_STATUS_TEMPLATE = "{endpoint} answered HTTP {status} for bucket {bucket} ({code})"

# Failures without a response from the server, most specific type first.
_NO_RESPONSE: tuple[tuple[type[BaseException], Kind, str], ...] = (
    (
        SSLError,
        _P,
        "TLS with {endpoint} failed for bucket {bucket}: fix the endpoint URL or its certificate",
    ),
    (ConnectTimeoutError, _T, "{endpoint} did not accept a connection in time (bucket {bucket})"),
    (ReadTimeoutError, _T, "{endpoint} did not answer in time for bucket {bucket}"),
    (BotoConnectionError, _T, "cannot reach {endpoint} for bucket {bucket}"),
    (HTTPClientError, _T, "the connection to {endpoint} failed for bucket {bucket}"),
    (URLLib3Error, _T, "the connection to {endpoint} failed for bucket {bucket}"),
    (http.client.HTTPException, _T, "the connection to {endpoint} broke for bucket {bucket}"),
    (ConnectionError, _T, "the connection to {endpoint} failed for bucket {bucket}"),
    (TimeoutError, _T, "{endpoint} timed out for bucket {bucket}"),
    # A body cut short or corrupted in transit: reading it again may well succeed.
    (IncompleteReadError, _T, "a response from {endpoint} for bucket {bucket} was cut short"),
    (ChecksumError, _T, "a response from {endpoint} for bucket {bucket} failed its checksum"),
    # A request botocore refused to build (bad parameter, bad endpoint URL): retrying
    # cannot help.
    (
        BotoCoreError,
        _P,
        "a request to {endpoint} for bucket {bucket} could not be made: check "
        "the destination's endpoint URL and region",
    ),
)


# What the S3 destination's seam catches; anything else is a bug and propagates as it is.
TRANSLATED: tuple[type[BaseException], ...] = (
    ClientError,
    BotoCoreError,
    URLLib3Error,
    http.client.HTTPException,
    OSError,
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_missing(exc: ClientError) -> bool:
    """The key is absent (``NoSuchKey``, or a bare 404 from HEAD) -- not the bucket."""
    code = error_code(exc)
    return code in {"NoSuchKey", "404", "NotFound"} or (code == "" and http_status(exc) == 404)


def classify(code: str, status: int) -> Kind:
    """Transient or permanent, from the error code when we know it, else from the status."""
    known = _CODES.get(code)
    if known is not None:
        return known[0]
    if status >= 500 or status in _TRANSIENT_STATUS:
        return Kind.TRANSIENT
    return Kind.PERMANENT


def translate(exc: BaseException, where: Where) -> DestinationError:
    """The portability error for ``exc``; the caller raises it ``from exc``."""
    if isinstance(exc, DestinationError):
        return exc
    wrapped = exc.kwargs.get("error") if isinstance(exc, HTTPClientError) else None
    if isinstance(wrapped, DestinationError):
        return wrapped  # our connect-time refusal (``_s3_guard``), wrapped by botocore
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or f"HTTP {status}"
        kind = classify(code, status)
        if code in _CODES:
            template = _CODES[code][1]
        elif kind is Kind.TRANSIENT:
            template = _TRANSIENT_STATUS_TEMPLATE
        else:
            template = _STATUS_TEMPLATES.get(status, _STATUS_TEMPLATES[0])
        text = _render(template, where, code=code or str(status), status=status)
        return _ERROR_CLASS[kind](text, detail=f"HTTP {status} {code}: {message}")
    detail = f"{type(exc).__name__}: {exc}"
    for exc_type, kind, template in _NO_RESPONSE:
        if isinstance(exc, exc_type):
            text = _render(template, where, code=type(exc).__name__)
            return _ERROR_CLASS[kind](text, detail=detail)
    # Another OSError (network unreachable, too many open files): worth another attempt.
    return DestinationTransientError(
        f"talking to {where.endpoint} for bucket {where.bucket!r} failed ({type(exc).__name__})",
        detail=detail,
    )


_ERROR_CLASS: dict[Kind, type[DestinationError]] = {
    Kind.TRANSIENT: DestinationTransientError,
    Kind.PERMANENT: DestinationPermanentError,
}


def _render(template: str, where: Where, *, code: str, status: int = 0) -> str:
    return template.format(
        bucket=_name(where.bucket),
        endpoint=where.endpoint,
        key=_name(where.key or ""),
        code=code,
        status=status,
    )


def _name(value: str) -> str:
    return repr(value)
