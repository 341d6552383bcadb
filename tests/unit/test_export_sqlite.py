"""The export engine on the embedded SQLite database (what `make demo` and a laptop run)."""

from __future__ import annotations

from sqlalchemy import text

from portability.db.models import RunStatus
from portability.destinations.memory import MemoryDestination
from portability.platform.mutate import mutate
from tests.fixtures.transfers import assert_consumer_exact, assert_exactly_once, run_to_end


def test_sqlite_delivers_a_first_and_an_incremental_run_exactly_once(sqlite_engine, make_transfer):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=200)
    assert run_to_end(transfer, transfer.new_run()) == RunStatus.SUCCEEDED
    mutate(sqlite_engine, user_id=transfer.user_id, updates=9, deletes=3, seed=4)

    second = transfer.new_run()
    assert run_to_end(transfer, second) == RunStatus.SUCCEEDED

    assert transfer.run(second).records == 12
    assert_exactly_once(transfer)
    assert_consumer_exact(transfer)


def test_a_run_with_nothing_new_writes_nothing_and_leaves_no_delivery_pending(
    sqlite_engine, make_transfer
):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=50)
    run_to_end(transfer, transfer.new_run())
    before = dict(transfer.destination.objects)

    again = transfer.new_run()
    assert run_to_end(transfer, again) == RunStatus.SUCCEEDED

    assert transfer.destination.objects == before
    assert transfer.run(again).records == 0
    with sqlite_engine.connect() as conn:
        statuses = conn.execute(
            text("SELECT DISTINCT status FROM run_categories WHERE run_id = :id"), {"id": again}
        ).scalars()
        pending = conn.execute(
            text("SELECT count(*) FROM streams WHERE planned_sequence > sequence")
        ).scalar_one()
    assert (set(statuses), pending) == ({"empty"}, 0)
