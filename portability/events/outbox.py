"""Writing an event into the outbox, inside the caller's transaction.

``record_event`` only inserts a row: it never commits, never talks to the broker, and costs one
statement, so a producer calls it in the very transaction of the state change it reports. If
that transaction rolls back, the event was never there; if it commits, the dispatcher will find
the row and deliver it, whatever happens to this process afterwards.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.event_models import Event

__all__ = ["new_event_id", "record_event"]

_EVENTS: Table = Event.__table__  # type: ignore[assignment]
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_event_id(now: float | None = None) -> str:
    """``evt_`` and a ULID (48 bits of milliseconds, 80 random bits, Crockford base32): unique,
    and sorting by id sorts by creation time to the millisecond."""
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "evt_" + "".join(reversed(chars))


def record_event(
    conn: Session | Connection,
    app_id: int,
    type: str,
    body: dict[str, Any],
    *,
    user_id: str | None = None,
    dedup_key: str | None = None,
    occurred_at: datetime | None = None,
) -> str | None:
    """Add an event to the outbox in ``conn``'s transaction; returns its id.

    With ``dedup_key``, a second event with the same key is not recorded (returns None): the
    first one stands. ``body`` must be small JSON; ``user_id`` (the platform's id) is stored
    for rendering the app's pseudonym and never sent.
    """
    event_id = new_event_id()
    values = {
        "id": event_id,
        "app_id": app_id,
        "type": str(type),
        "occurred_at": occurred_at or utcnow(),
        "body": body,
        "user_id": user_id,
        "dedup_key": dedup_key,
        "dispatched_at": None,
    }
    if dedup_key is None:
        conn.execute(insert(_EVENTS).values(values))
        return event_id
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    dialect = bind.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(_EVENTS).on_conflict_do_nothing(
            index_elements=["dedup_key"]
        )
    elif dialect == "sqlite":
        statement = sqlite.insert(_EVENTS).on_conflict_do_nothing(index_elements=["dedup_key"])
    else:  # pragma: no cover - the two supported databases are above
        raise NotImplementedError(dialect)
    result = conn.execute(statement.values(values))
    return event_id if result.rowcount else None  # type: ignore[attr-defined]
