"""The exception tree of portability. Callers branch on the families, never on messages.

    PortabilityError
     ├── ValidationError            bad input, refused before anything is stored
     ├── NotFoundError              no such app / grant / destination / schedule / run
     ├── ConflictError              the row moved under us (guarded transition lost)
     ├── AuthenticationError        missing, unknown, expired or revoked API key or token
     ├── RateLimitedError           over an app's request rate (``retry_after`` seconds)
     ├── ConsentError               grant expired, revoked, used, non-EEA, app not approved
     ├── CategoryBusyError          another run holds the (grant, category) lease: try later
     ├── DestinationError
     │    ├── DestinationTransientError   5xx, throttling, timeouts, resets: retry with backoff
     │    ├── DestinationPermanentError   access denied, no such bucket, bad keys: fix and re-run
     │    └── ObjectExistsError           a conditional write found the key already there
     ├── SourceError                the change feed could not be read
     └── IntegrityError             a manifest or part failed verification (consumer side)

``FailureReason`` is the typed reason stored on a failed or cancelled run.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuthenticationError",
    "CategoryBusyError",
    "ConflictError",
    "ConsentError",
    "DestinationError",
    "DestinationPermanentError",
    "DestinationTransientError",
    "FailureReason",
    "IntegrityError",
    "NotFoundError",
    "ObjectExistsError",
    "PortabilityError",
    "RateLimitedError",
    "SourceError",
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


class ValidationError(PortabilityError, ValueError):
    """Input refused; the message names the field and what is wrong with it.

    ``field``, when the raiser knows it, is the input's name (``use_case``, ``categories``):
    the HTTP API reports it as the field at fault.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


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


class IntegrityError(PortabilityError):
    """A delivered object does not match what its manifest promises."""
