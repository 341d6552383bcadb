"""Run history partitioned by month on PostgreSQL (migration 0010, portability.db.partitions).

Each test has a schema of its own: they migrate up and down, and create and drop partitions,
which the session's shared schema must not see.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from portability.db.engine import make_engine, transaction
from portability.db.migrate import alembic_config, downgrade, upgrade
from portability.db.partitions import (
    Month,
    ensure_month_partitions,
    maintain_run_partitions,
    month_partitions,
)
from portability.destinations.memory import MemoryDestination
from portability.errors import FailureReason
from portability.runs import claim_run, release_for_retry
from tests.fixtures.db import PG_HOST, PG_PORT, create_pg_schema, drop_pg_schema, pg_schema_url
from tests.fixtures.services import require_service
from tests.fixtures.transfers import assert_exactly_once, run_to_end

pytestmark = pytest.mark.services

#: The revision migration 0010 upgrades from.
BEFORE = str(ScriptDirectory.from_config(alembic_config()).get_revision("0010").down_revision)

NOW = datetime.now(UTC)
#: Months of history before the migration: a year ago, three months ago, last month, now.
AGES = [timedelta(days=365), timedelta(days=92), timedelta(days=31), timedelta(0)]


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    """An engine on an empty schema of its own."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    schema = create_pg_schema("part")
    engine = make_engine(pg_schema_url(schema))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_pg_schema(schema)


@pytest.fixture
def partitioned_engine(fresh_engine: Engine) -> Engine:
    upgrade(fresh_engine)
    return fresh_engine


def _rows(conn: Connection, table: str, order: str) -> list[tuple[object, ...]]:
    columns = "id, status, queued_at, finished_at" if table == "runs" else "run_id, category"
    return [tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY {order}"))]


def _columns(conn: Connection, table: str) -> list[tuple[str, str, bool]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = :t ORDER BY column_name"
            ),
            {"t": table},
        )
    ]


def _constraints(conn: Connection) -> set[tuple[str, str]]:
    return {
        (name, definition)
        for name, definition in conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conparentid = 0"
                " AND conrelid IN (CAST('runs' AS regclass), CAST('run_categories' AS regclass))"
            )
        )
    }


def _indexes(conn: Connection) -> set[str]:
    return set(
        conn.scalars(
            text(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN "
                "(CAST('runs' AS regclass), CAST('run_categories' AS regclass))"
            )
        )
    )


def _month_key(engine: Engine, suffix: str) -> str | None:
    """The foreign key of one month's category partition."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = to_regclass(:t)"
            ),
            {"t": f"run_categories_{suffix}"},
        ).scalar()


def _history_over_months(engine: Engine, make_transfer) -> tuple[object, list[int]]:
    """Ended runs queued in several months, each with its category rows, before 0010.

    Today's models write at head (they know every later column), then the schema goes back
    to the revision before 0010, where the runs end and get their category rows in SQL."""
    upgrade(engine)
    transfer = make_transfer(engine, MemoryDestination(), records=10, categories="posts,profile")
    ids = [transfer.new_run(now=NOW - age) for age in AGES]
    downgrade(engine, BEFORE)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE runs SET status = 'succeeded', started_at = queued_at, "
                "finished_at = queued_at + interval '1 minute'"
            )
        )
        conn.execute(
            text(
                "INSERT INTO run_categories (run_id, category, status, records, bytes, parts) "
                "SELECT id, c, 'done', 3, 30, 1 FROM runs, (VALUES ('posts'), ('profile')) v(c)"
            )
        )
    return transfer, ids


def test_upgrade_puts_every_run_and_category_row_in_its_months_partition(
    fresh_engine, make_transfer
):
    _, ids = _history_over_months(fresh_engine, make_transfer)
    with fresh_engine.connect() as conn:
        runs_before = _rows(conn, "runs", "id")
        categories_before = _rows(conn, "run_categories", "run_id, category")
        columns_before = _columns(conn, "runs")

    upgrade(fresh_engine)

    with fresh_engine.connect() as conn:
        assert _columns(conn, "runs") == columns_before  # attempt_log (0009) and the rest
        assert _rows(conn, "runs", "id") == runs_before
        assert _rows(conn, "run_categories", "run_id, category") == categories_before
        placed = conn.execute(
            text("SELECT id, tableoid::regclass::text FROM runs ORDER BY id")
        ).all()
        category_placed = conn.execute(
            text(
                "SELECT run_id, tableoid::regclass::text FROM run_categories "
                "WHERE category = 'posts' ORDER BY run_id"
            )
        ).all()
        constraints = _constraints(conn)
    expected = [Month.of(NOW - age) for age in AGES]
    assert placed == [(i, m.partition("runs")) for i, m in zip(ids, expected, strict=True)]
    assert category_placed == [
        (i, m.partition("run_categories")) for i, m in zip(ids, expected, strict=True)
    ]
    assert ("pk_runs", "PRIMARY KEY (id, queued_at)") in constraints
    assert ("pk_run_categories", "PRIMARY KEY (run_id, run_queued_at, category)") in constraints
    for month in {*expected, Month.of(NOW).plus(3)}:
        assert _month_key(fresh_engine, month.suffix) == (
            f"FOREIGN KEY (run_id, run_queued_at) REFERENCES runs_{month.suffix}(id, queued_at)"
            " ON DELETE CASCADE"
        )
    assert _month_key(fresh_engine, "default") is not None


def test_after_the_upgrade_a_run_is_created_claimed_and_exported_end_to_end(
    fresh_engine, make_transfer
):
    transfer, ids = _history_over_months(fresh_engine, make_transfer)
    upgrade(fresh_engine)

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == "succeeded"

    assert run_id > max(ids)  # the id sequence carried over
    assert_exactly_once(transfer, ["posts", "profile"])
    with fresh_engine.connect() as conn:
        where = conn.execute(
            text("SELECT DISTINCT tableoid::regclass::text FROM run_categories WHERE run_id = :r"),
            {"r": run_id},
        ).scalar_one()
    assert where == Month.of(NOW).partition("run_categories")


def test_a_category_row_cannot_name_a_run_that_does_not_exist(partitioned_engine):
    with (
        pytest.raises(IntegrityError, match=r"fk_run_categories_\w+_runs"),
        partitioned_engine.begin() as conn,
    ):
        conn.execute(
            text(
                "INSERT INTO run_categories (run_id, run_queued_at, category, status, "
                "records, bytes, parts) VALUES (424242, now(), 'posts', 'done', 0, 0, 0)"
            )
        )


def test_downgrade_merges_the_partitions_back_into_single_tables_with_every_row(
    fresh_engine, make_transfer
):
    _history_over_months(fresh_engine, make_transfer)
    with fresh_engine.connect() as conn:
        runs_before = _rows(conn, "runs", "id")
        categories_before = _rows(conn, "run_categories", "run_id, category")
        constraints_before, indexes_before = _constraints(conn), _indexes(conn)
    upgrade(fresh_engine)

    downgrade(fresh_engine, BEFORE)

    with fresh_engine.connect() as conn:
        assert _rows(conn, "runs", "id") == runs_before
        assert _rows(conn, "run_categories", "run_id, category") == categories_before
        assert _constraints(conn) == constraints_before
        assert _indexes(conn) == indexes_before
        kinds = conn.execute(
            text(
                "SELECT relname, relkind FROM pg_class WHERE relname LIKE 'run%' AND relkind IN "
                "('r', 'p') AND relnamespace = current_schema()::regnamespace ORDER BY relname"
            )
        ).all()
        sequence = conn.execute(text("SELECT pg_get_serial_sequence('runs', 'id')")).scalar()
    assert kinds == [("run_categories", "r"), ("runs", "r")]
    assert sequence is not None


def test_maintenance_creates_the_coming_months_once(partitioned_engine):
    later = datetime(2031, 11, 15, tzinfo=UTC)

    maintain_run_partitions(partitioned_engine, older_than_days=None, now=later, months_ahead=2)
    maintain_run_partitions(partitioned_engine, older_than_days=None, now=later, months_ahead=2)

    wanted = {Month(2031, 11), Month(2031, 12), Month(2032, 1)}
    with partitioned_engine.connect() as conn:
        for table in ("runs", "run_categories"):
            assert wanted <= set(month_partitions(conn, table)), table


def test_two_schedulers_maintaining_at_once_both_succeed(partitioned_engine):
    later = datetime(2033, 3, 1, tzinfo=UTC)
    errors: list[BaseException] = []

    def maintain() -> None:
        try:
            maintain_run_partitions(partitioned_engine, older_than_days=None, now=later)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=maintain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with partitioned_engine.connect() as conn:
        assert Month(2033, 6) in month_partitions(conn, "runs")


def test_retention_drops_an_expired_month_and_keeps_one_with_an_unfinished_run(
    partitioned_engine, make_transfer
):
    transfer = make_transfer(partitioned_engine, MemoryDestination(), records=5)
    expired, unfinished = Month.of(NOW).plus(-6), Month.of(NOW).plus(-5)
    with partitioned_engine.begin() as conn:
        ensure_month_partitions(conn, [expired, unfinished])
    done = transfer.new_run(now=expired.start + timedelta(days=3))
    still_running = transfer.new_run(now=unfinished.start + timedelta(days=3))
    with partitioned_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE runs SET status = 'succeeded', finished_at = queued_at + interval '1 hour' "
                "WHERE id = :d"
            ),
            {"d": done},
        )
        conn.execute(text("UPDATE runs SET status = 'running' WHERE id = :r"), {"r": still_running})
        conn.execute(
            text(
                "INSERT INTO run_categories (run_id, run_queued_at, category, status, records, "
                "bytes, parts) SELECT id, queued_at, 'posts', 'done', 1, 1, 1 FROM runs"
            )
        )

    dropped = maintain_run_partitions(partitioned_engine, older_than_days=30)

    assert dropped == [expired]
    with partitioned_engine.connect() as conn:
        assert expired not in month_partitions(conn, "runs")
        assert expired not in month_partitions(conn, "run_categories")
        assert unfinished in month_partitions(conn, "runs")
        left = conn.execute(text("SELECT id FROM runs")).scalars().all()
        defaults = conn.execute(
            text("SELECT to_regclass('runs_default'), to_regclass('run_categories_default')")
        ).one()
    assert left == [still_running]
    assert None not in defaults


def test_a_run_sent_back_to_retry_keeps_its_queued_at_and_its_partition(
    partitioned_engine, make_transfer
):
    transfer = make_transfer(partitioned_engine, MemoryDestination(), records=5)
    queued = NOW - timedelta(days=40)
    with partitioned_engine.begin() as conn:
        ensure_month_partitions(conn, [Month.of(queued)])
    run_id = transfer.new_run(now=queued)
    with partitioned_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO run_categories (run_id, run_queued_at, category, status, records, "
                "bytes, parts) SELECT id, queued_at, 'posts', 'planned', 0, 0, 0 FROM runs"
            )
        )
    with transaction(transfer.runtime.sessions) as session:
        assert claim_run(session, run_id, lease_seconds=30)
    with transaction(transfer.runtime.sessions) as session:
        assert release_for_retry(
            session,
            run_id,
            error="S3 timed out",
            reason=FailureReason.DESTINATION_TRANSIENT,
            delay_seconds=1,
        )

    with partitioned_engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, queued_at, enqueued_at, tableoid::regclass::text FROM runs")
        ).one()
    assert (row.status, row.queued_at, row.tableoid) == (
        "queued",
        queued,
        Month.of(queued).partition("runs"),
    )
    assert row.enqueued_at > queued
