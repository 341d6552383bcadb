"""The built-in change feed: ``platform_changes`` read between transaction-id watermarks.

Feed key is ``txid`` (the writing transaction's id), ties broken by ``position``.

* PostgreSQL: the watermark is ``pg_snapshot_xmin(pg_current_snapshot())``, the oldest
  transaction still in flight. Every change with a smaller ``txid`` is committed (or rolled back)
  for good, so a range below it never changes -- even when a transaction that started earlier
  commits after a later one. Reads stream the stored lines with ``COPY ... TO STDOUT`` along
  ``ix_platform_changes_feed``; no Python object is made per change.
* SQLite: one writer at a time, ``txid = position``; the watermark is ``max(position) + 1``.
  Reads page by keyset on ``(txid, position)``.

Database errors surface as ``SourceError`` (transient: the run retries).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from portability.categories import Category
from portability.errors import SourceError, ValidationError
from portability.sources.base import TOMBSTONE_END, ChangeBatch, Source

__all__ = ["SqlChangeFeed"]

_PG_WATERMARK = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_SQLITE_PAGE = (
    "SELECT txid, position, line FROM platform_changes"
    " WHERE user_id = ? AND category = ? AND txid >= ? AND txid < ?"
    " AND (txid > ? OR (txid = ? AND position > ?))"
    " ORDER BY txid, position LIMIT ?"
)


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
        """Stream ``COPY (SELECT line ...) TO STDOUT``: the server sends each stored line as
        it is and the client only joins bytes -- memory is one batch, not the range.

        Measured against the alternatives on 1,000,000 rows: a server-side cursor returning
        ``line`` (~250k rows/s, a tuple and a str per row) and pages aggregated by the server
        with ``string_agg`` (~210k rows/s, the aggregation costs more server time than it
        saves) -- COPY was the fastest.

        COPY's text format escapes only backslash, newline, carriage return and tab; a JSON
        line from ``change_line`` holds no raw control character, so undoing the format is one
        ``replace`` of doubled backslashes per block. Sequential scans and sorts are disabled
        for this read only: the range is always walked in order on ``ix_platform_changes_feed``,
        never sorted in the server, whatever share of the table the user holds.
        """
        from psycopg import sql

        query = sql.SQL(
            "COPY (SELECT line FROM platform_changes"
            " WHERE user_id = {} AND category = {} AND txid >= {} AND txid < {}"
            " ORDER BY txid, position) TO STDOUT"
        ).format(sql.Literal(user_id), sql.Literal(category), sql.Literal(lo), sql.Literal(hi))
        raw = self.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            with dbapi.cursor() as cursor:
                # One round trip: without parameters, psycopg sends both at once.
                cursor.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
                with cursor.copy(query) as copy:
                    rows: list[bytes] = []
                    for row in copy:
                        rows.append(bytes(row))
                        if len(rows) >= batch_size:
                            yield _block(rows)
                            rows = []
                    if rows:
                        yield _block(rows)
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
                yield ChangeBatch.from_lines([row[2] for row in rows])
                if len(rows) < batch_size:
                    return
        finally:
            raw.close()


def _block(rows: list[bytes]) -> ChangeBatch:
    """A batch from COPY text rows (each already ends with a newline)."""
    body = b"".join(rows)
    if b"\\" in body:
        body = body.replace(b"\\\\", b"\\")
    return ChangeBatch(body=body, records=len(rows), deletes=body.count(TOMBSTONE_END))


def _driver_errors() -> tuple[type[Exception], ...]:
    """Errors raised by the raw driver connections we read through (not wrapped by SQLAlchemy)."""
    import sqlite3

    import psycopg

    return (psycopg.Error, sqlite3.Error)
