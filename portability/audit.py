"""The audit log: every state-changing staff command leaves one row, in its own transaction.

``record`` is called inside the transaction that makes the change, so a change and its audit
entry commit together or not at all. ``snapshot`` turns a row into the plain ``before``/
``after`` values stored with it (secrets never: destination credentials are left out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from portability.db.models import AuditEntry

__all__ = ["AuditEntry", "entries", "record", "snapshot"]

#: Columns never copied into the audit log.
_SECRET_COLUMNS = frozenset({"credentials_encrypted", "api_key_hash"})


def snapshot(row: object | None) -> dict[str, Any] | None:
    """A row's columns as JSON-ready values, secrets left out."""
    if row is None:
        return None
    values: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        if attr.key in _SECRET_COLUMNS:
            continue
        value = getattr(row, attr.key)
        values[attr.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def record(
    session: Session,
    *,
    actor: str,
    command: str,
    object_type: str,
    object_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    note: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor[:200],
        command=command[:200],
        object_type=object_type,
        object_id=str(object_id),
        before=before,
        after=after,
        note=note,
    )
    session.add(entry)
    session.flush()
    return entry


def entries(
    session: Session,
    *,
    object_type: str | None = None,
    object_id: object | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if object_type is not None:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEntry.object_id == str(object_id))
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query.limit(limit).offset(offset)).all())
