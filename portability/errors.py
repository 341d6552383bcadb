"""The exception tree of portability. Callers branch on the families, never on messages.

    PortabilityError
     ├── ValidationError            bad input, refused before anything is stored
     │    └── EndpointRefusedError  a URL the network policy refuses (portability.netpolicy)
     ├── ConfigurationError         settings missing or inconsistent (e.g. no encryption key)
     ├── NotFoundError              no such app / grant / destination / schedule / run
     ├── ConflictError              the row moved under us (guarded transition lost)
     ├── AuthenticationError        missing, unknown, expired or revoked API key or token
     ├── RateLimitedError           over an app's request rate (``retry_after`` seconds)
     ├── ConsentError               grant expired, revoked, used, non-EEA, app not approved
     ├── CategoryBusyError          another run holds the stream's lease: try later
     ├── DestinationError
     │    ├── DestinationTransientError   5xx, throttling, timeouts, resets: retry with backoff
     │    ├── DestinationPermanentError   access denied, no such bucket, bad keys: fix and re-run
     │    └── ObjectExistsError           a conditional write found the key already there
     ├── SourceError                the change feed could not be read
     ├── TenancyError               a row pairs one app's grant with another app's objects
     ├── OAuthError                 the consent flow refused a request (RFC 6749 error code)
     ├── IntegrityError             a manifest or part failed verification (consumer side)
     └── UnavailableError           a service is down or not set up; the message names the fix
          ├── DatabaseUnavailableError   cannot connect to the database
          ├── SchemaNotMigratedError     tables missing or behind: run `portability db upgrade`
          └── BrokerUnavailableError     cannot publish: committed runs wait for the reconciler

``FailureReason`` is the typed reason stored on a failed or cancelled run.

Messages (``str(exc)``) are our own words and may be shown to developers. Raw text from
elsewhere -- an S3 server's error message, a driver's exception -- goes in ``detail``, which is
stored for staff only (``runs.error_detail``) and never shown to developers.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuthenticationError",
    "BrokerUnavailableError",
    "CategoryBusyError",
    "ConfigurationError",
    "ConflictError",
    "ConsentError",
    "DatabaseUnavailableError",
    "DestinationError",
    "DestinationPermanentError",
    "DestinationTransientError",
    "EndpointRefusedError",
    "FailureReason",
    "IntegrityError",
    "NotFoundError",
    "OAuthError",
    "ObjectExistsError",
    "PortabilityError",
    "RateLimitedError",
    "SchemaNotMigratedError",
    "SourceError",
    "TenancyError",
    "UnavailableError",
    "ValidationError",
]


class FailureReason(StrEnum):
    CONSENT = "consent"
    DESTINATION_PERMANENT = "destination_permanent"
    DESTINATION_TRANSIENT = "destination_transient"
    SOURCE = "source"
    INTERNAL = "internal"


class PortabilityError(Exception):
    """Base of every error this package raises on purpose."""

    reason: FailureReason = FailureReason.INTERNAL
    is_transient: bool = False

    def __init__(self, *args: object, detail: str | None = None) -> None:
        super().__init__(*args)
        #: Raw diagnostic text for staff (server messages, driver errors); never for developers.
        self.detail = detail


class ValidationError(PortabilityError, ValueError):
    """Input refused; the message names the field and what is wrong with it.

    ``field``, when the raiser knows it, is the input's name (``use_case``, ``categories``):
    the HTTP API reports it as the field at fault.
    """

    def __init__(
        self, message: str, *, field: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.field = field


class EndpointRefusedError(ValidationError):
    """The network policy refuses a URL: not https, or not a public internet address."""

    def __init__(
        self, message: str, *, field: str | None = "endpoint_url", detail: str | None = None
    ) -> None:
        super().__init__(message, field=field, detail=detail)


class ConfigurationError(PortabilityError):
    """A setting is missing or inconsistent; the message names the variable to set."""


class NotFoundError(PortabilityError, LookupError):
    pass


class ConflictError(PortabilityError):
    pass


class AuthenticationError(PortabilityError):
    """A missing, unknown, expired or revoked credential (API key, service token)."""


class RateLimitedError(PortabilityError):
    """Over a rate limit; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConsentError(PortabilityError):
    reason = FailureReason.CONSENT


class CategoryBusyError(PortabilityError):
    is_transient = True


class DestinationError(PortabilityError):
    pass


class DestinationTransientError(DestinationError):
    reason = FailureReason.DESTINATION_TRANSIENT
    is_transient = True


class DestinationPermanentError(DestinationError):
    reason = FailureReason.DESTINATION_PERMANENT


class ObjectExistsError(DestinationError):
    """``If-None-Match: *`` refused the write: the object is already there."""


class SourceError(PortabilityError):
    reason = FailureReason.SOURCE
    is_transient = True


class TenancyError(PortabilityError):
    """A run or schedule pairs one app's grant with another app's destination: refused, since
    delivering would put one app's user's data into another app's bucket."""


class OAuthError(PortabilityError):
    """The consent flow (``portability.oauth``) refused a request. ``error`` is the RFC 6749
    error code (``invalid_request``, ``invalid_grant``, ``invalid_scope``...) the HTTP layer
    sends; the message says in our words what is wrong."""

    def __init__(
        self,
        error: str,
        message: str,
        *,
        redirect_uri: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        #: Set once the redirect URI is verified: the error goes back to the app there
        #: (RFC 6749 4.1.2.1); unset, the user gets a page and is sent nowhere.
        self.redirect_uri = redirect_uri
        self.state = state


class IntegrityError(PortabilityError):
    """A delivered object does not match what its manifest promises."""


class UnavailableError(PortabilityError):
    """The environment is not ready (a service down, a schema not migrated), not the input."""

    is_transient = True


class DatabaseUnavailableError(UnavailableError):
    pass


class SchemaNotMigratedError(UnavailableError):
    is_transient = False


class BrokerUnavailableError(UnavailableError):
    pass
