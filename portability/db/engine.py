"""Engines and sessions, built from settings at an edge and passed down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from portability.settings import Settings

__all__ = ["make_engine", "make_session_factory", "relax_durability", "transaction"]


def make_engine(url_or_settings: str | Settings, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys on."""
    url = (
        url_or_settings.resolved_database_url
        if isinstance(url_or_settings, Settings)
        else url_or_settings
    )
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    return engine


#: A connection back in the pool for less than this is taken as alive without a ping (the
#: idea of HikariCP's ``aliveBypassWindowMs``). A busy worker checks connections out many times
#: a second, and ``pool_pre_ping``'s ping at every checkout was a tenth of the database time
#: of an incremental run; a connection idle for longer is pinged, and replaced if dead.
PING_WHEN_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    def checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_WHEN_IDLE_SECONDS:
            return  # fresh, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out another (a few tries).
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN so two processes serialise instead of failing on upgrade;
    # an autocommit connection (a lone read) takes no lock at all.
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def relax_durability(session: Session | Connection) -> None:
    """Let this transaction commit without waiting for its WAL flush (PostgreSQL).

    For bookkeeping whose loss in a database crash is repaired by design (leases lapse, a
    claim is retried, a manifest found beyond the checkpoint is adopted). Never for the
    checkpoint advance. A no-op on SQLite.
    """
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))
