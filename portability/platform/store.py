"""The platform store's write API: current state plus one change-feed row per change.

Two ways in, both inside the caller's transaction (a ``Connection`` it opened with
``engine.begin()``; nothing here commits):

* ``write_changes`` -- upserts and deletes of one user's records of one category, validated,
  each appended to ``platform_changes`` as the exact line a consumer receives
  (``portability.records.change_line``). Used by the mutator, the demo and tests.
* ``load_records`` -- the bulk path for the seeder: a stream of already-valid records, written
  with ``COPY`` on PostgreSQL and ``executemany`` on SQLite, in bounded chunks. It lives in
  ``_bulk`` and is re-exported here with its ``LoadReport``, ``SeedRecord`` and
  ``fast_change_line``.

Feed keys: on PostgreSQL ``txid`` comes from the column default ``pg_current_xact_id()`` and
``position`` from its sequence, so we never set either. On SQLite (one writer at a time; our
engine opens every transaction with ``BEGIN IMMEDIATE``) we assign ``position`` after the
current maximum and set ``txid = position``.

Replaying the feed in ``(txid, position)`` order must reproduce the current state. On PostgreSQL
a transaction that took its id early could otherwise overwrite a record that a *newer*
transaction changed and committed meanwhile: applied last, but ordered first in the feed. So
after writing, ``write_changes`` looks for a change to the same records with a higher ``txid``
(row locks make that check race-free) and refuses with ``ConflictError``: roll back and retry,
and the retry's new transaction id orders it correctly. Expects READ COMMITTED, the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from portability.categories import Category
from portability.db.base import utcnow
from portability.db.models import PlatformUser
from portability.errors import ConflictError, NotFoundError, ValidationError
from portability.platform._bulk import LoadReport, SeedRecord, fast_change_line, load_records
from portability.platform.shapes import (
    Data,
    Shape,
    check_record_id,
    in_published_order,
    shape_for,
)
from portability.platform.tables import PlatformChange
from portability.records import Op, change_line
from portability.sources.sql import SQLITE_FEED_TOP

__all__ = [
    "LoadReport",
    "SeedRecord",
    "add_platform_users",
    "current_state",
    "fast_change_line",
    "load_records",
    "record_ids",
    "write_changes",
]

_CHANGES = cast(Table, PlatformChange.__table__)
_USERS = cast(Table, PlatformUser.__table__)
_IN_CHUNK = 500


def write_changes(
    conn: Connection,
    user_id: str,
    category: Category | str,
    *,
    upserts: Mapping[str, Data] | None = None,
    deletes: Iterable[str] = (),
    changed_at: datetime | None = None,
) -> int:
    """Apply ``upserts`` (record id -> data) then ``deletes`` for one user and category.

    Each change updates the current-state table and appends one feed row, in that order, all
    stamped ``changed_at`` (default now). A delete leaves a tombstone in the feed. Refuses
    (``ValidationError``) malformed ids or data and ids that belong to another user; a delete of
    a record the user does not have raises ``NotFoundError``; ``ConflictError`` (PostgreSQL)
    means a newer transaction changed one of the records first: roll back and retry. Returns
    the number of changes.
    """
    shape = shape_for(category)
    check_record_id(user_id, "user id")
    upserts = dict(upserts or {})
    delete_ids = list(deletes)
    for record_id, data in upserts.items():
        check_record_id(record_id)
        shape.check(user_id, record_id, data)
    upserts = {rid: in_published_order(shape.category, data) for rid, data in upserts.items()}
    for record_id in delete_ids:
        check_record_id(record_id)
    if not upserts and not delete_ids:
        return 0
    when = changed_at or utcnow()
    if when.tzinfo is None:
        raise ValidationError("changed_at must be a timezone-aware datetime")

    owners = _owners(conn, shape, [*upserts, *delete_ids])
    for record_id, owner in owners.items():
        if owner != user_id:
            raise ValidationError(f"{shape.category} record {record_id!r} belongs to another user")
    missing = sorted({rid for rid in delete_ids if rid not in owners} - set(upserts))
    if missing:
        raise NotFoundError(
            f"user {user_id} has no {shape.category} record {', '.join(map(repr, missing))}"
        )

    changes: list[dict[str, Any]] = []
    if upserts:
        rows = []
        for record_id, data in upserts.items():
            change = _change_row(user_id, shape.category, record_id, Op.UPSERT, when, data)
            changes.append(change)
            rows.append({**shape.bind(user_id, data), "line": change["line"]})
        _upsert(conn, shape, rows)
    if delete_ids:
        table = shape.table
        for chunk in _chunks(delete_ids, _IN_CHUNK):
            conn.execute(
                table.delete().where(table.c[shape.key].in_(chunk), table.c.user_id == user_id)
            )
        for record_id in delete_ids:
            changes.append(_change_row(user_id, shape.category, record_id, Op.DELETE, when, None))
    _append_changes(conn, changes)
    if conn.dialect.name == "postgresql":
        _refuse_newer_changes(conn, user_id, shape.category, [*upserts, *delete_ids])
    return len(changes)


def current_state(engine: Engine, user_id: str, category: Category | str) -> dict[str, Data]:
    """Every record the user has now in ``category``: the truth a consumer must reproduce."""
    shape = shape_for(category)
    table = shape.table
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.user_id == user_id)).mappings()
        return {row[shape.key]: shape.to_data(row) for row in rows}


def record_ids(conn: Connection, user_id: str, category: Category | str) -> list[str]:
    """The user's record ids in ``category``, sorted (for picking what to mutate)."""
    shape = shape_for(category)
    table = shape.table
    key = table.c[shape.key]
    return list(conn.scalars(select(key).where(table.c.user_id == user_id).order_by(key)))


def add_platform_users(
    conn: Connection, users: Sequence[tuple[str, str]], created_at: datetime | None = None
) -> None:
    """Insert ``(user id, country)`` rows into ``platform_users`` (the control-plane view)."""
    when = created_at or utcnow()
    rows = []
    for user_id, country in users:
        check_record_id(user_id, "user id")
        if len(country) != 2 or not country.isalpha():
            raise ValidationError(f"country {country!r} must be a two-letter ISO 3166 code")
        rows.append({"id": user_id, "country": country.upper(), "created_at": when})
    if rows:
        conn.execute(insert(_USERS), rows)


# -- internals -------------------------------------------------------------------------------


def _owners(conn: Connection, shape: Shape, ids: Sequence[str]) -> dict[str, str]:
    table = shape.table
    key = table.c[shape.key]
    owners: dict[str, str] = {}
    for chunk in _chunks(sorted(set(ids)), _IN_CHUNK):
        for record_id, owner in conn.execute(select(key, table.c.user_id).where(key.in_(chunk))):
            owners[record_id] = owner
    return owners


def _upsert(conn: Connection, shape: Shape, rows: list[dict[str, Any]]) -> None:
    table = shape.table
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported backends
        raise NotImplementedError(conn.dialect.name)
    stmt = stmt.on_conflict_do_update(
        index_elements=[shape.key],
        set_={name: stmt.excluded[name] for name in shape.stored_columns if name != shape.key},
    )
    conn.execute(stmt, rows)


def _change_row(
    user_id: str, category: Category, record_id: str, op: Op, when: datetime, data: Data | None
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "category": category.value,
        "record_id": record_id,
        "op": op.value,
        "changed_at": when,
        "line": change_line(record_id, op, when, data),
    }


def _append_changes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        base = int(conn.exec_driver_sql(SQLITE_FEED_TOP).scalar() or 0)
        for offset, row in enumerate(rows, start=1):
            row["position"] = row["txid"] = int(base or 0) + offset
    conn.execute(insert(_CHANGES), rows)


_NEWER = text(
    "SELECT record_id FROM platform_changes"
    " WHERE user_id = :user_id AND category = :category"
    " AND txid > pg_current_xact_id()::text::bigint AND record_id IN :ids LIMIT 1"
).bindparams(bindparam("ids", expanding=True))


def _refuse_newer_changes(
    conn: Connection, user_id: str, category: Category, ids: Sequence[str]
) -> None:
    """Raise if a newer transaction committed a change to one of ``ids`` before we wrote it.

    Runs after our writes, which hold the rows' locks: a newer writer still in flight waits
    for us (and orders after us); one that committed first is visible to this statement. The
    probe walks the feed index over the few changes newer than our own transaction.
    """
    for chunk in _chunks(sorted(set(ids)), _IN_CHUNK):
        params = {"user_id": user_id, "category": category.value, "ids": list(chunk)}
        newer = conn.execute(_NEWER, params).scalar()
        if newer is not None:
            raise ConflictError(
                f"{category} record {newer!r} of user {user_id} was changed by a newer "
                "transaction that committed first: roll back and retry the write"
            )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
