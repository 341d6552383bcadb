"""The exception tree of portability. Callers branch on the families, never on messages.

    PortabilityError
     ├── ValidationError            bad input, refused before anything is stored
     │    └── EndpointRefusedError  a URL the network policy refuses (portability.netpolicy)
     ├── ConfigurationError         settings missing or inconsistent (e.g. no encryption key)
     ├── NotFoundError              no such app / grant / destination / schedule / run
     ├── ConflictError              the row moved under us (guarded transition lost)
     ├── ConsentError               grant expired, revoked, used, non-EEA, app not approved
     ├── CategoryBusyError          another run holds the stream's lease: try later
     ├── DestinationError
     │    ├── DestinationTransientError   5xx, throttling, timeouts, resets: retry with backoff
     │    ├── DestinationPermanentError   access denied, no such bucket, bad keys: fix and re-run
     │    └── ObjectExistsError           a conditional write found the key already there
     ├── SourceError                the change feed could not be read
     ├── TenancyError               a row pairs one app's grant with another app's objects
     ├── OAuthError                 the consent flow refused a request (RFC 6749 error code)
     └── IntegrityError             a manifest or part failed verification (consumer side)

``FailureReason`` is the typed reason stored on a failed or cancelled run.

Messages (``str(exc)``) are our own words and may be shown to developers. Raw text from
elsewhere -- an S3 server's error message, a driver's exception -- goes in ``detail``, which is
stored for staff only (``runs.error_detail``) and never shown to developers.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CategoryBusyError",
    "ConfigurationError",
    "ConflictError",
    "ConsentError",
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
    "SourceError",
    "TenancyError",
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
    """Input refused; the message names the field and what is wrong with it."""


class EndpointRefusedError(ValidationError):
    """The network policy refuses a URL: not https, or not a public internet address."""


class ConfigurationError(PortabilityError):
    """A setting is missing or inconsistent; the message names the variable to set."""


class NotFoundError(PortabilityError, LookupError):
    pass


class ConflictError(PortabilityError):
    pass


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
