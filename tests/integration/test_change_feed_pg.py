"""Promise 2, "nothing skipped, nothing stalled", on real PostgreSQL.

Positions are snapshots: a read from one position to the next holds exactly the transactions
that committed in between, whatever order they started in, and an open transaction that
wrote nothing to the feed -- here or in another database of the server -- delays nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from typing import cast

import orjson
import pytest
from sqlalchemy import Connection, Engine

from portability.categories import Category
from portability.errors import ConflictError
from portability.platform.store import current_state, write_changes
from portability.sources.base import ChangeBatch
from portability.sources.sql import SqlChangeFeed
from tests.fixtures.platform import ORIGIN, make_record, read_all

pytestmark = pytest.mark.services

U1 = "u000001"
POSTS = Category.POSTS


@pytest.fixture
def source(pg_engine: Engine) -> SqlChangeFeed:
    return SqlChangeFeed(pg_engine)


@pytest.fixture
def held(pg_engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction the test keeps open (rolled back if left open)."""
    conn = pg_engine.connect()
    conn.begin()
    try:
        yield conn
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.close()


def upsert(conn: Connection, record_id: str, user_id: str = U1) -> None:
    write_changes(conn, user_id, POSTS, upserts={record_id: make_record(POSTS, record_id, user_id)})


def txid_of(conn: Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_current_xact_id()::text::bigint").scalar_one())


def feed_keys(engine: Engine, record_id: str) -> tuple[int, int]:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT txid, position FROM platform_changes WHERE record_id = %(r)s", {"r": record_id}
        ).one()
    return int(row[0]), int(row[1])


def record_ids(lines: list[str]) -> list[str]:
    return [orjson.loads(line)["id"] for line in lines]


def test_earlier_transaction_committing_late_is_read_once_after_it_commits(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    upsert(held, "pA")  # A: lower txid, lower position, still open
    txid_a = txid_of(held)
    with pg_engine.begin() as conn_b:  # B: later txid, commits first
        upsert(conn_b, "pB")
    txid_b, _ = feed_keys(pg_engine, "pB")
    assert txid_a < txid_b

    first = source.position()
    before = read_all(source, U1, POSTS, None, first)
    held.commit()
    second = source.position()
    after = read_all(source, U1, POSTS, first, second)
    third = source.position()

    assert record_ids(before) == ["pB"]  # B is not held back by A
    assert record_ids(after) == ["pA"]  # A arrives with the next read, once
    assert read_all(source, U1, POSTS, second, third) == []


def test_lower_txid_writing_a_higher_position_is_read_once_after_it_commits(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    upsert(held, "early", user_id="u000002")  # A takes its txid now, with an unrelated write
    txid_a = txid_of(held)
    with pg_engine.begin() as conn_b:
        upsert(conn_b, "pB")
    first = source.position()
    before = read_all(source, U1, POSTS, None, first)

    upsert(held, "pA")  # A's change gets a position after B's, but A's lower txid
    held.commit()
    txid_b, position_b = feed_keys(pg_engine, "pB")
    txid_a_row, position_a = feed_keys(pg_engine, "pA")
    assert (txid_a_row, txid_a < txid_b, position_a > position_b) == (txid_a, True, True)

    after = read_all(source, U1, POSTS, first, source.position())

    assert record_ids(before) == ["pB"]
    assert record_ids(after) == ["pA"]


def test_every_change_is_seen_exactly_once_across_interleaved_reads(
    pg_engine: Engine, source: SqlChangeFeed
) -> None:
    """Three writers commit in the reverse of their start order while the reader keeps up."""
    seen: list[list[str]] = []
    mark = source.position()
    open_txs = []
    for name in ("t1", "t2", "t3"):
        conn = pg_engine.connect()
        conn.begin()
        upsert(conn, name)
        open_txs.append(conn)
    try:
        for conn in reversed(open_txs):
            conn.commit()
            new_mark = source.position()
            seen.append(record_ids(read_all(source, U1, POSTS, mark, new_mark)))
            mark = new_mark
    finally:
        for conn in open_txs:
            conn.close()

    assert seen == [["t3"], ["t2"], ["t1"]]  # each as soon as it commits, exactly once


def test_rolled_back_changes_never_appear(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    start = source.position()
    upsert(held, "ghost")
    during = source.position()
    held.rollback()
    with pg_engine.begin() as conn:
        upsert(conn, "real")
    now = source.position()

    assert record_ids(read_all(source, U1, POSTS, start, during)) == []
    assert record_ids(read_all(source, U1, POSTS, during, now)) == ["real"]


def test_open_transactions_that_wrote_nothing_to_the_feed_delay_no_read(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection, foreign_transaction: int
) -> None:
    txid_of(held)  # an id taken in the platform database, nothing written to the feed
    start = source.position()
    with pg_engine.begin() as conn:
        upsert(conn, "p1")
    now = source.position()

    if foreign_transaction > 0:
        assert foreign_transaction in now.xip  # still open in the other database
    assert record_ids(read_all(source, U1, POSTS, start, now)) == ["p1"]


def test_abandoning_a_read_returns_its_connection(pg_engine: Engine, source: SqlChangeFeed) -> None:
    with pg_engine.begin() as conn:
        write_changes(
            conn,
            U1,
            POSTS,
            upserts={f"p{n}": make_record(POSTS, f"p{n}", U1) for n in range(10)},
        )
    mark = source.position()

    reader = cast(
        Generator[ChangeBatch, None, None], source.read_changes(U1, POSTS, ORIGIN, mark, 2)
    )
    assert len(next(reader)) == 2
    assert pg_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    reader.close()

    assert pg_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert read_all(source, U1, POSTS, None, mark) != []


# -- the feed replays to the state, whatever the commit order -------------------------------


def replay(source: SqlChangeFeed, category: Category = POSTS) -> dict[str, object]:
    state: dict[str, object] = {}
    for record in map(orjson.loads, read_all(source, U1, category, None, source.position())):
        if record["op"] == "delete":
            state.pop(record["id"], None)
        else:
            state[record["id"]] = record["data"]
    return state


def test_older_transaction_overwriting_a_newer_committed_change_is_refused(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    with pg_engine.begin() as conn:
        upsert(conn, "p1")
    upsert(held, "early", user_id="u000002")  # the older transaction takes its txid
    with pg_engine.begin() as conn:  # a newer one edits p1 and commits
        write_changes(
            conn, U1, POSTS, upserts={"p1": make_record(POSTS, "p1", caption="newer #test")}
        )

    with pytest.raises(ConflictError, match="'p1' of user u000001 was changed by a newer"):
        write_changes(
            held, U1, POSTS, upserts={"p1": make_record(POSTS, "p1", caption="older #test")}
        )
    held.rollback()
    with pg_engine.begin() as conn:  # the retry, in a new (newest) transaction
        write_changes(
            conn, U1, POSTS, upserts={"p1": make_record(POSTS, "p1", caption="older #test")}
        )

    assert replay(source) == current_state(pg_engine, U1, POSTS)
    assert current_state(pg_engine, U1, POSTS)["p1"]["caption"] == "older #test"


def test_older_transaction_reviving_a_record_a_newer_one_deleted_is_refused(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    with pg_engine.begin() as conn:
        upsert(conn, "p1")
    upsert(held, "early", user_id="u000002")
    with pg_engine.begin() as conn:
        write_changes(conn, U1, POSTS, deletes=["p1"])

    with pytest.raises(ConflictError, match="'p1'"):
        upsert(held, "p1")


def test_newer_writer_waiting_on_an_older_ones_row_lock_is_ordered_after_it(
    pg_engine: Engine, source: SqlChangeFeed, held: Connection
) -> None:
    with pg_engine.begin() as conn:
        upsert(conn, "p1")
    write_changes(held, U1, POSTS, upserts={"p1": make_record(POSTS, "p1", caption="first")})
    errors: list[BaseException] = []

    def newer() -> None:
        try:
            with pg_engine.begin() as conn:
                write_changes(
                    conn, U1, POSTS, upserts={"p1": make_record(POSTS, "p1", caption="second")}
                )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=newer)
    thread.start()
    wait_until_blocked_on_a_lock(pg_engine)
    held.commit()
    thread.join(timeout=30)

    assert not thread.is_alive() and errors == []
    assert current_state(pg_engine, U1, POSTS)["p1"]["caption"] == "second"
    assert replay(source) == current_state(pg_engine, U1, POSTS)


def wait_until_blocked_on_a_lock(engine: Engine, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND datname = current_database() AND query LIKE '%%platform_posts%%'"
    )
    while True:
        with engine.connect() as conn:
            if conn.exec_driver_sql(query).scalar_one():
                return
        assert time.monotonic() < deadline, "the newer writer never blocked on the row lock"
        time.sleep(0.01)
