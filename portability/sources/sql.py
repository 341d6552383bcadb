"""The built-in change feed: ``platform_changes`` read between snapshot positions.

Feed key is ``txid`` (the writing transaction's id), ties broken by ``position``.

* PostgreSQL: a position is ``pg_current_snapshot()``. A delivery from ``a`` to ``b`` reads two
  index walks along ``ix_platform_changes_feed``: a probe of each transaction that was in
  flight at ``a`` (``txid = ANY(a.xip)``), then the range ``a.xmax <= txid < b.xmax``; both
  keep only what ``b`` sees. Nothing waits for an unrelated open transaction, and the cost
  follows the changes read. Reads stream the stored lines with ``COPY ... TO STDOUT``; no
  Python object is made per change.
* SQLite: one writer at a time, ``txid = position``; a position is ``n:n:`` with ``n`` the
  next position. Reads page by keyset on ``(txid, position)``.

A full replay reads the current-state table of the category (each row keeps its latest
delivered line) in one REPEATABLE READ transaction whose snapshot is the replay's position.

Database errors surface as ``SourceError`` (transient: the run retries).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from portability.categories import Category
from portability.errors import SourceError, ValidationError
from portability.sources.base import TOMBSTONE_END, ChangeBatch, Source, StateRead
from portability.sources.position import Position

__all__ = ["SQLITE_FEED_TOP", "STATE_TABLES", "SqlChangeFeed"]

#: The current-state table of each category (see ``portability.platform.tables``).
STATE_TABLES = {
    Category.PROFILE: "platform_profiles",
    Category.POSTS: "platform_posts",
    Category.ACTIVITY: "platform_activity",
    Category.DIRECT_MESSAGES: "platform_messages",
}

_PG_POSITION = "SELECT pg_current_snapshot()::text"
#: The newest feed id on SQLite. Retention may delete the newest rows too, so the marks it
#: took (each at the next id then) keep ids from ever being handed out twice.
SQLITE_FEED_TOP = (
    "SELECT max(coalesce((SELECT max(position) FROM platform_changes), 0),"
    " coalesce((SELECT max(snapshot_xmin) - 1 FROM feed_marks), 0))"
)
_SQLITE_PAGE = (
    "SELECT txid, position, line FROM platform_changes"
    " WHERE user_id = ? AND category = ? AND txid >= ? AND txid < ?"
    " AND (txid > ? OR (txid = ? AND position > ?))"
    " ORDER BY txid, position LIMIT ?"
)
#: Only this read: walk the feed index in order, never sort or scan the table.
_PG_INDEX_ONLY = "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"


class SqlChangeFeed(Source):
    """``Source`` over the platform store's tables (PostgreSQL or SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def position(self) -> Position:
        try:
            if self.is_postgres:
                # Its own short autocommit connection: no snapshot of ours is held open.
                with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    return Position.parse(str(conn.exec_driver_sql(_PG_POSITION).scalar_one()))
            top = self._sqlite_scalar(SQLITE_FEED_TOP, ())
            return Position.at(int(top or 0) + 1)
        except DBAPIError as exc:
            raise SourceError(f"could not read the change feed position: {exc.orig}") from exc
        except _driver_errors() as exc:
            raise SourceError(f"could not read the change feed position: {exc}") from exc

    def read_changes(
        self,
        user_id: str,
        category: Category,
        since: Position,
        until: Position,
        batch_size: int,
    ) -> Generator[ChangeBatch, None, None]:
        if batch_size < 1:
            raise ValidationError(f"batch size must be at least 1, not {batch_size}")
        kind = Category(category).value
        reader = self._changes_postgres if self.is_postgres else self._changes_sqlite
        with _translated(f"could not read {kind} changes"):
            yield from reader(user_id, kind, since, until, batch_size)

    @contextmanager
    def read_state(self, user_id: str, category: Category, batch_size: int) -> Iterator[StateRead]:
        if batch_size < 1:
            raise ValidationError(f"batch size must be at least 1, not {batch_size}")
        table = STATE_TABLES[Category(category)]
        opener = self._state_postgres if self.is_postgres else self._state_sqlite
        with (
            _translated(f"could not read the current {category}"),
            opener(user_id, table, batch_size) as state,
        ):
            yield StateRead(state.position, _translating(state.batches, category))

    # -- PostgreSQL ------------------------------------------------------------------------

    def _changes_postgres(
        self, user_id: str, category: str, since: Position, until: Position, batch_size: int
    ) -> Iterator[ChangeBatch]:
        """Two ``COPY`` reads in one transaction: the probe of ``since``'s in-flight
        transactions (all below ``since.xmax``, so feed order holds across the two), then the
        new range.

        COPY's text format escapes only backslash, newline, carriage return and tab; a JSON
        line holds no raw control character, so undoing the format is one ``replace`` of
        doubled backslashes per block (``_block``).
        """
        from psycopg import sql

        visible = sql.SQL("txid < {} AND txid <> ALL({})").format(
            sql.Literal(until.xmax), _bigints(until.xip)
        )
        head = sql.SQL(
            "SELECT line FROM platform_changes WHERE user_id = {} AND category = {}"
        ).format(sql.Literal(user_id), sql.Literal(category))
        queries = []
        if since.xip:
            queries.append(
                sql.SQL("{} AND txid = ANY({}) AND {} ORDER BY txid, position").format(
                    head, _bigints(since.xip), visible
                )
            )
        if until.xmax > since.xmax:
            queries.append(
                sql.SQL("{} AND txid >= {} AND {} ORDER BY txid, position").format(
                    head, sql.Literal(since.xmax), visible
                )
            )
        if not queries:
            return
        raw = self.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            with dbapi.cursor() as cursor:
                cursor.execute(_PG_INDEX_ONLY)
                for query in queries:
                    yield from _copied(cursor, query, batch_size)
            dbapi.rollback()
        finally:
            raw.close()

    @contextmanager
    def _state_postgres(self, user_id: str, table: str, batch_size: int) -> Iterator[StateRead]:
        """The snapshot of a REPEATABLE READ transaction is fixed by its first statement, which
        reads it: the state and the position are one consistent view."""
        from psycopg import sql

        raw = self.engine.raw_connection()
        try:
            dbapi: Any = raw.driver_connection
            with dbapi.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cursor.execute(_PG_POSITION)
                position = Position.parse(cursor.fetchone()[0])
                cursor.execute("SET LOCAL enable_seqscan = off")
                query = sql.SQL("SELECT line FROM {} WHERE user_id = {}").format(
                    sql.Identifier(table), sql.Literal(user_id)
                )
                batches = _copied(cursor, query, batch_size)
                try:
                    yield StateRead(position, batches)
                finally:
                    # A reader that stopped early (consent, a failed upload) leaves the COPY
                    # mid-stream: closing the generator ends it before the connection returns
                    # to the pool (a rollback during COPY would wait for ever).
                    batches.close()
            dbapi.rollback()
        finally:
            raw.close()

    # -- SQLite ----------------------------------------------------------------------------

    def _sqlite_scalar(self, sql: str, args: tuple[Any, ...]) -> Any:
        """One statement on the raw autocommit connection: a read takes no write lock (our
        engine opens SQLAlchemy transactions with ``BEGIN IMMEDIATE``)."""
        raw = self.engine.raw_connection()
        try:
            return raw.cursor().execute(sql, args).fetchone()[0]
        finally:
            raw.close()

    def _changes_sqlite(
        self, user_id: str, category: str, since: Position, until: Position, batch_size: int
    ) -> Iterator[ChangeBatch]:
        """Keyset pages, each its own short statement: no transaction is held between batches.
        A single writer leaves no transaction in flight, so positions carry no ``xip``."""
        if since.xip or until.xip:
            raise ValidationError("an SQLite feed position has no in-flight transactions")
        lo, hi = since.xmax, until.xmax
        if lo >= hi:
            return
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

    @contextmanager
    def _state_sqlite(self, user_id: str, table: str, batch_size: int) -> Iterator[StateRead]:
        """A deferred read transaction: WAL mode gives it one snapshot for the position and
        every page, while writers go on."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            top = cursor.execute(SQLITE_FEED_TOP).fetchone()[0]
            position = Position.at(int(top or 0) + 1)
            cursor.execute(f"SELECT line FROM {table} WHERE user_id = ?", (user_id,))

            def pages() -> Iterator[ChangeBatch]:
                while rows := cursor.fetchmany(batch_size):
                    yield ChangeBatch.from_lines([row[0] for row in rows])

            try:
                yield StateRead(position, pages())
            finally:
                cursor.execute("COMMIT")
        finally:
            raw.close()


def _bigints(values: tuple[int, ...]) -> Any:
    from psycopg import sql

    return sql.SQL("{}::bigint[]").format(sql.Literal("{" + ",".join(map(str, values)) + "}"))


def _copied(cursor: Any, query: Any, batch_size: int) -> Generator[ChangeBatch, None, None]:
    """Stream ``COPY (query) TO STDOUT`` in blocks of ``batch_size`` lines."""
    from psycopg import sql

    with cursor.copy(sql.SQL("COPY ({}) TO STDOUT").format(query)) as copy:
        rows: list[bytes] = []
        for row in copy:
            rows.append(bytes(row))
            if len(rows) >= batch_size:
                yield _block(rows)
                rows = []
        if rows:
            yield _block(rows)


def _block(rows: list[bytes]) -> ChangeBatch:
    """A batch from COPY text rows (each already ends with a newline)."""
    body = b"".join(rows)
    if b"\\" in body:
        body = body.replace(b"\\\\", b"\\")
    return ChangeBatch(body=body, records=len(rows), deletes=body.count(TOMBSTONE_END))


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        raise SourceError(f"{what}: {exc.orig}") from exc
    except _driver_errors() as exc:
        raise SourceError(f"{what}: {exc}") from exc


def _translating(batches: Iterator[ChangeBatch], category: str) -> Iterator[ChangeBatch]:
    with _translated(f"could not read the current {category}"):
        yield from batches


def _driver_errors() -> tuple[type[Exception], ...]:
    """Errors raised by the raw driver connections we read through (not wrapped by SQLAlchemy)."""
    import sqlite3

    import psycopg

    return (psycopg.Error, sqlite3.Error)
