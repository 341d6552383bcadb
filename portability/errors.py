"""The exception tree of portability. Callers branch on the families, never on messages.

    PortabilityError
     ├── ValidationError            bad input, refused before anything is stored
     ├── NotFoundError              no such app / grant / destination / schedule / run
     ├── ConflictError              the row moved under us (guarded transition lost)
     ├── ConsentError               grant expired, revoked, used, non-EEA, app not approved
     ├── CategoryBusyError          another run holds the (grant, category) lease: try later
     ├── DestinationError
     │    ├── DestinationTransientError   5xx, throttling, timeouts, resets: retry with backoff
     │    ├── DestinationPermanentError   access denied, no such bucket, bad keys: fix and re-run
     │    └── ObjectExistsError           a conditional write found the key already there
     ├── SourceError                the change feed could not be read
     ├── IntegrityError             a manifest or part failed verification (consumer side)
     └── UnavailableError           a service is down or not set up; the message names the fix
          ├── DatabaseUnavailableError   cannot connect to the database
          ├── SchemaNotMigratedError     tables missing or behind: run `portability db upgrade`
          └── BrokerUnavailableError     cannot publish: committed runs wait for the reconciler

``FailureReason`` is the typed reason stored on a failed or cancelled run.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BrokerUnavailableError",
    "CategoryBusyError",
    "ConflictError",
    "ConsentError",
    "DatabaseUnavailableError",
    "DestinationError",
    "DestinationPermanentError",
    "DestinationTransientError",
    "FailureReason",
    "IntegrityError",
    "NotFoundError",
    "ObjectExistsError",
    "PortabilityError",
    "SchemaNotMigratedError",
    "SourceError",
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


class ValidationError(PortabilityError, ValueError):
    """Input refused; the message names the field and what is wrong with it."""


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
