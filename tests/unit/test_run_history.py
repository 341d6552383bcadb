"""portability.history: ended runs past the retention go, in bounded batches; others stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from portability.db.base import utcnow
from portability.destinations.memory import MemoryDestination
from portability.history import prune_run_history
from tests.fixtures.transfers import run_to_end


def _runs(engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, status FROM runs ORDER BY id"))]


def _age(engine, run_id: int, days: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET finished_at = :t WHERE id = :i"),
            {"t": utcnow() - timedelta(days=days), "i": run_id},
        )


def test_ended_runs_older_than_the_retention_are_deleted_with_their_categories(
    sqlite_engine, make_transfer
):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=20, categories="posts")
    old, recent = transfer.new_run(), None
    run_to_end(transfer, old)
    recent = transfer.new_run()
    run_to_end(transfer, recent)
    waiting = transfer.new_run()  # queued: never deleted, however old
    _age(sqlite_engine, old, 40)
    _age(sqlite_engine, recent, 10)
    with sqlite_engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET queued_at = :t WHERE id = :i"),
            {"t": utcnow() - timedelta(days=90), "i": waiting},
        )

    assert prune_run_history(sqlite_engine, older_than_days=30) == 1
    assert [run_id for run_id, _ in _runs(sqlite_engine)] == [recent, waiting]
    with sqlite_engine.connect() as conn:
        orphans = conn.execute(
            text("SELECT count(*) FROM run_categories WHERE run_id = :i"), {"i": old}
        ).scalar_one()
    assert orphans == 0


def test_one_call_deletes_at_most_its_batches_and_the_next_goes_on(sqlite_engine, make_transfer):
    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=5, categories="posts")
    ids = [transfer.new_run() for _ in range(5)]
    with sqlite_engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET status = 'failed', finished_at = :t"),
            {"t": utcnow() - timedelta(days=60)},
        )

    assert prune_run_history(sqlite_engine, older_than_days=30, batch=2, max_batches=1) == 2
    assert prune_run_history(sqlite_engine, older_than_days=30, batch=2, max_batches=5) == 3
    assert _runs(sqlite_engine) == []
    assert len(ids) == 5
