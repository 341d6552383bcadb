"""Pooled PostgreSQL connections: pinged only after being idle, and replaced when found dead."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from portability.db import engine as db_engine
from portability.db.engine import make_engine
from tests.fixtures.db import PG_ADMIN_URL

pytestmark = pytest.mark.services


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_conn: object) -> bool:
        pings.append(1)
        return real_ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    return pings


def test_a_connection_back_in_the_pool_a_moment_ago_is_reused_without_a_ping(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(pg_engine, monkeypatch)
    first = _backend_pid(pg_engine)

    assert _backend_pid(pg_engine) == first
    assert pings == []


def test_a_connection_idle_past_the_window_is_pinged_before_use(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _count_pings(pg_engine, monkeypatch)
    first = _backend_pid(pg_engine)
    monkeypatch.setattr(db_engine, "PING_WHEN_IDLE_SECONDS", 0.0)

    assert _backend_pid(pg_engine) == first
    assert pings == [1]


def test_a_pooled_connection_that_died_while_idle_is_replaced_not_handed_out(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _backend_pid(pg_engine)
    admin = make_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
            conn.commit()
    finally:
        admin.dispose()
    monkeypatch.setattr(db_engine, "PING_WHEN_IDLE_SECONDS", 0.0)

    assert _backend_pid(pg_engine) != dead


def test_an_idle_connection_pinged_at_checkout_can_still_be_switched_to_autocommit(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend_pid(pg_engine)
    monkeypatch.setattr(db_engine, "PING_WHEN_IDLE_SECONDS", 0.0)

    autocommit = pg_engine.execution_options(isolation_level="AUTOCOMMIT")
    assert _backend_pid(autocommit) == first
    assert _backend_pid(pg_engine) == first  # and back to transactions afterwards
