"""One seam from the driver's errors to ours: which ones mean "the environment is not ready".

A support engineer who sees ``OperationalError ... no such table: runs [SQL: ...]`` learns
nothing; ``translate`` turns such errors into a ``PortabilityError`` whose message names the
fix. Errors it does not recognise are returned as ``None`` and stay what they are.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DataError, DBAPIError, InterfaceError, OperationalError

from portability.errors import (
    DatabaseUnavailableError,
    PortabilityError,
    SchemaNotMigratedError,
    ValidationError,
)

__all__ = ["safe_url", "translate"]

#: Driver messages (SQLite, psycopg) that mean the schema is missing or behind the code.
_NOT_MIGRATED = ("no such table", "no such column", "undefinedtable", "undefinedcolumn")
_NOT_MIGRATED_PG = ("42P01", "42703")  # undefined_table, undefined_column


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse is shown as the scheme only
        return url.split(":", 1)[0] + "://…"


def translate(exc: BaseException, url: str) -> PortabilityError | None:
    """Our error for a database failure of ``url``, or ``None`` if ``exc`` is not one we know."""
    if not isinstance(exc, DBAPIError):
        return None
    where = safe_url(url)
    text = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    code = getattr(exc.orig, "sqlstate", None)
    lowered = text.lower()
    if code in _NOT_MIGRATED_PG or any(marker in lowered for marker in _NOT_MIGRATED):
        return SchemaNotMigratedError(
            f"the database at {where} is not migrated ({text}): run `portability db upgrade`"
        )
    if isinstance(exc, DataError):
        return ValidationError(f"the database refused a value: {text}")
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and exc.connection_invalidated
    ):
        return DatabaseUnavailableError(
            f"cannot use the database at {where} ({text}): check PORTABILITY_DATABASE_URL "
            "and that the server is running"
        )
    return None
