"""Exit codes by error family, and the one-line report."""

from __future__ import annotations

import sys
import traceback

import click

from portability.errors import (
    ConfigurationError,
    ConflictError,
    ConsentError,
    DestinationError,
    IntegrityError,
    NotFoundError,
    PortabilityError,
    ValidationError,
)

DEBUG = False

EXIT_CODES: list[tuple[type[BaseException], int, str]] = [
    (ValidationError, 2, "check the value named above"),
    (ConfigurationError, 2, "set the PORTABILITY_* variable named above"),
    (NotFoundError, 3, "check the id; list what exists with the matching list command"),
    (ConflictError, 4, "the object changed meanwhile; look at it again and retry"),
    (ConsentError, 5, "the user's grant or the app's status does not allow this transfer"),
    (DestinationError, 6, "fix the destination (bucket, keys, endpoint) and re-run"),
    (IntegrityError, 7, "the delivered data does not match its manifest; re-run the export"),
    (PortabilityError, 1, "see the message above"),
]


def report(exc: BaseException) -> int:
    """Print ``exc`` for a human and return the exit code for its family."""
    if isinstance(exc, click.exceptions.Abort | KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 130
    if isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if isinstance(exc, click.ClickException):
        exc.show()
        return int(exc.exit_code)
    if DEBUG:
        traceback.print_exception(exc)
    for family, code, hint in EXIT_CODES:
        if isinstance(exc, family):
            print(f"error: {exc}", file=sys.stderr)
            print(f"hint: {hint}", file=sys.stderr)
            return code
    if not DEBUG:
        print(f"internal error: {type(exc).__name__}: {exc} (re-run with --debug)", file=sys.stderr)
    return 70
