"""Feed retention on the embedded database: old rows go in bounded batches, and a stream that
had not delivered them replays in full instead of leaving a silent gap."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from portability.db.base import utcnow
from portability.db.models import RunStatus
from portability.destinations.memory import MemoryDestination
from portability.platform.mutate import mutate
from portability.sources.retention import apply_retention
from tests.fixtures.transfers import assert_consumer_exact, run_to_end

DAYS = 30


def feed_rows(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM platform_changes")).scalar_one())


def replay_reasons(engine, run_id: int) -> set[str | None]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT replay_reason FROM run_categories WHERE run_id = :r"), {"r": run_id}
        )
        return {reason for (reason,) in rows}


def test_a_mark_younger_than_the_window_deletes_nothing(sqlite_engine, make_transfer):
    make_transfer(sqlite_engine, MemoryDestination(), records=60)
    before = feed_rows(sqlite_engine)

    report = apply_retention(sqlite_engine, retention_days=DAYS, now=utcnow())

    assert (report.horizon, report.deleted, feed_rows(sqlite_engine)) == (None, 0, before)


def test_rows_older_than_the_window_are_deleted_in_bounded_batches(sqlite_engine, make_transfer):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=60)
    start = utcnow()
    apply_retention(sqlite_engine, retention_days=DAYS, now=start)  # marks the seeded rows
    mutate(sqlite_engine, user_id=transfer.user_id, updates=5, deletes=0, seed=1)
    seeded = feed_rows(sqlite_engine) - 5

    report = apply_retention(
        sqlite_engine, retention_days=DAYS, batch_size=7, now=start + timedelta(days=DAYS + 1)
    )

    assert report.deleted == seeded
    assert report.batches == seeded // 7 + 1
    assert feed_rows(sqlite_engine) == 5  # the changes younger than the horizon stay


def test_a_stream_behind_the_horizon_replays_and_its_consumer_ends_exact(
    sqlite_engine, make_transfer
):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=80)
    assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED
    mutate(sqlite_engine, user_id=transfer.user_id, updates=8, deletes=3, seed=2)
    start = utcnow()
    apply_retention(sqlite_engine, retention_days=DAYS, now=start)  # above the new changes
    apply_retention(sqlite_engine, retention_days=DAYS, now=start + timedelta(days=DAYS + 1))

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert replay_reasons(sqlite_engine, run_id) == {"behind_retention"}
    assert_consumer_exact(transfer)


def test_a_stream_that_delivered_everything_below_the_horizon_goes_on_with_increments(
    sqlite_engine, make_transfer
):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=80)
    start = utcnow()
    apply_retention(sqlite_engine, retention_days=DAYS, now=start)
    run_to_end(transfer, transfer.new_run())
    apply_retention(sqlite_engine, retention_days=DAYS, now=start + timedelta(days=DAYS + 1))
    mutate(sqlite_engine, user_id=transfer.user_id, updates=4, deletes=1, seed=3)

    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == RunStatus.SUCCEEDED

    assert replay_reasons(sqlite_engine, run_id) <= {None}
    assert transfer.run(run_id).records == 5
    assert_consumer_exact(transfer)
