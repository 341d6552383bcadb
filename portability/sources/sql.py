"""The built-in change feed: ``platform_changes`` read between transaction-id watermarks.

Feed key is ``txid`` (the writing transaction's id), ties broken by ``position``.

* PostgreSQL: the watermark is ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest
  transaction still in flight. Every change with a smaller ``txid`` is committed (or rolled back)
  for good, so a range below it never changes -- even when a transaction that started earlier
  commits after a later one. Reads stream through a psycopg server-side cursor, selecting only
  ``line`` (a tombstone is recognised by its ending). A cursor also makes the planner favour a
  fast-start plan -- walking ``ix_platform_changes_feed`` in order -- where a plain query for a
  user holding much of the table could pick a sequential scan and a sort of the whole range.
* SQLite: one writer at a time, ``txid = position``; the watermark is ``max(position) + 1``.
  Reads page by keyset on ``(txid, position)``.

Database errors surface as ``SourceError`` (transient: the run retries).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from portability.categories import Category
from portability.errors import SourceError, ValidationError
from portability.sources.base import ChangeBatch, Source

__all__ = ["SqlChangeFeed"]

#: A tombstone's line ends with ``"data":null}``; an upsert's ends with its data object's ``}``
#: (``records.change_line`` always puts ``data`` last). Exact, and cheaper than a second column.
_TOMBSTONE_END = ',"data":null}'
#: Rows per FETCH from the server-side cursor. Smaller round trips measured faster than one
#: per batch (2,000 rows ~ 600 kB stays in cache); batches are assembled from several fetches.
_FETCH_ROWS = 2000
_PG_WATERMARK = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_PG_READ = (
    "SELECT line FROM platform_changes"
    " WHERE user_id = %s AND category = %s AND txid >= %s AND txid < %s"
    " ORDER BY txid, position"
)
_SQLITE_PAGE = (
    "SELECT txid, position, line FROM platform_changes"
    " WHERE user_id = ? AND category = ? AND txid >= ? AND txid < ?"
    " AND (txid > ? OR (txid = ? AND position > ?))"
    " ORDER BY txid, position LIMIT ?"
)
_EXISTS = text(
    "SELECT EXISTS (SELECT 1 FROM platform_changes"
    " WHERE user_id = :user_id AND category = :category"
    " AND txid >= :lo AND txid < :hi)"
)
_SQLITE_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM platform_changes"
    " WHERE user_id = ? AND category = ? AND txid >= ? AND txid < ?)"
)
_cursor_names = itertools.count(1)


class SqlChangeFeed(Source):
    """``Source`` over the platform store's ``platform_changes`` table (PostgreSQL or SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def watermark(self) -> int:
        try:
            if self.is_postgres:
                # Its own short autocommit connection: no snapshot of ours may hold xmin back.
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    return int(conn.exec_driver_sql(_PG_WATERMARK).scalar_one())
            top = self._sqlite_scalar("SELECT max(position) FROM platform_changes", ())
            return int(top or 0) + 1
        except DBAPIError as exc:
            raise SourceError(f"could not read the change feed watermark: {exc.orig}") from exc
        except _driver_errors() as exc:
            raise SourceError(f"could not read the change feed watermark: {exc}") from exc

    def read(
        self,
        user_id: str,
        category: Category,
        from_watermark: int,
        to_watermark: int,
        batch_size: int,
    ) -> Iterator[ChangeBatch]:
        if batch_size < 1:
            raise ValidationError(f"batch size must be at least 1, not {batch_size}")
        kind = Category(category).value
        if from_watermark >= to_watermark:
            return
        reader = self._read_postgres if self.is_postgres else self._read_sqlite
        try:
            yield from reader(user_id, kind, from_watermark, to_watermark, batch_size)
        except DBAPIError as exc:
            raise SourceError(
                f"could not read {kind} changes of user {user_id}: {exc.orig}"
            ) from exc
        except _driver_errors() as exc:
            raise SourceError(f"could not read {kind} changes of user {user_id}: {exc}") from exc

    def has_changes(
        self, user_id: str, category: Category, from_watermark: int, to_watermark: int
    ) -> bool:
        if from_watermark >= to_watermark:
            return False
        kind = Category(category).value
        try:
            if not self.is_postgres:
                args = (user_id, kind, from_watermark, to_watermark)
                return bool(self._sqlite_scalar(_SQLITE_EXISTS, args))
            params = {
                "user_id": user_id,
                "category": kind,
                "lo": from_watermark,
                "hi": to_watermark,
            }
            with self.engine.connect() as conn:
                return bool(conn.execute(_EXISTS, params).scalar())
        except DBAPIError as exc:
            raise SourceError(f"could not probe the change feed: {exc.orig}") from exc
        except _driver_errors() as exc:
            raise SourceError(f"could not probe the change feed: {exc}") from exc

    def _sqlite_scalar(self, sql: str, args: tuple[Any, ...]) -> Any:
        """One statement on the raw autocommit connection: a read takes no write lock (our
        engine opens SQLAlchemy transactions with ``BEGIN IMMEDIATE``)."""
        raw = self.engine.raw_connection()
        try:
            return raw.cursor().execute(sql, args).fetchone()[0]
        finally:
            raw.close()

    def _read_postgres(
        self, user_id: str, category: str, lo: int, hi: int, batch_size: int
    ) -> Iterator[ChangeBatch]:
        """Stream through a named (server-side) cursor: memory is one batch, not the range.

        The cursor lives in its own read-only transaction on a pooled connection; one snapshot
        serves the whole range, which is final anyway because ``hi`` is a watermark.
        """
        raw = self.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            name = f"portability_feed_{next(_cursor_names)}"
            with dbapi.cursor(name=name) as cursor:
                cursor.execute(_PG_READ, (user_id, category, lo, hi))
                fetch = min(batch_size, _FETCH_ROWS)
                lines: list[str] = []
                while rows := cursor.fetchmany(fetch):
                    lines += [line for (line,) in rows]
                    if len(lines) >= batch_size:
                        yield _batch(lines[:batch_size])
                        lines = lines[batch_size:]
                if lines:
                    yield _batch(lines)
            dbapi.rollback()
        finally:
            raw.close()

    def _read_sqlite(
        self, user_id: str, category: str, lo: int, hi: int, batch_size: int
    ) -> Iterator[ChangeBatch]:
        """Keyset pages, each its own short statement: no transaction is held between batches.

        The raw connection runs in autocommit, so a read never takes the ``BEGIN IMMEDIATE``
        write lock our engine uses for transactions.
        """
        txid, position = lo - 1, 0
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            while True:
                cursor.execute(
                    _SQLITE_PAGE, (user_id, category, lo, hi, txid, txid, position, batch_size)
                )
                rows = cursor.fetchall()
                if not rows:
                    return
                txid, position = rows[-1][0], rows[-1][1]
                yield _batch([row[2] for row in rows])
                if len(rows) < batch_size:
                    return
        finally:
            raw.close()


def _batch(lines: list[str]) -> ChangeBatch:
    end = _TOMBSTONE_END
    return ChangeBatch(lines=lines, deletes=sum(line.endswith(end) for line in lines))


def _driver_errors() -> tuple[type[Exception], ...]:
    """Errors raised by the raw driver connections we read through (not wrapped by SQLAlchemy)."""
    import sqlite3

    import psycopg

    return (psycopg.Error, sqlite3.Error)
