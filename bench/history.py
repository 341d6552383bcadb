"""Benchmark: does run history slow the scheduler's tick or a worker's claim?

In a throwaway PostgreSQL schema, registers ``--schedules`` schedules (``--due`` of them due)
and times, first with no run history and then after inserting ``--history`` finished runs
(default 10,000,000, spread over a year, one ``run_categories`` row each):

- the tick that claims the due schedules and writes their runs (enqueue is a no-op here:
  ``bench/scheduler.py`` measures publishing);
- ``claim_run`` of ``--claims`` of those runs, one transaction each (median and p95 ms);
- one batch of history retention (``prune_run_history``, 5,000 runs);
- on the partitioned schema (migration 0010), the drop of the expired months
  (``drop_expired_months``: one ``DETACH`` + ``DROP`` per month).

The year's monthly partitions are created before the history is inserted, as the scheduler's
maintenance would have created each in its time.

Prints its figures; the last line is one JSON object. Needs PostgreSQL on loopback (see
tests/fixtures/db.py for the URL). Inserting 10M runs takes minutes and a few GB of disk.

    .venv/bin/python bench/history.py [--history N] [--schedules N] [--due N]

With ``--migration``, it times instead migration 0010 (partitioning) and its downgrade over
``--history`` runs inserted at the revision before it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from bench.scheduler import populate
from portability.db.engine import make_engine, make_session_factory, transaction
from portability.db.migrate import alembic_config, downgrade, upgrade
from portability.db.partitions import Month, drop_expired_months, ensure_month_partitions
from portability.history import prune_run_history
from portability.runs import claim_run
from portability.settings import Settings
from schedules import DatabaseRuntime, run_tick
from tests.fixtures.db import create_pg_schema, drop_pg_schema, pg_schema_url

_CHUNK = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="do not drop the schema")
    parser.add_argument("--migration", action="store_true", help="time migration 0010")
    args = parser.parse_args()
    schema = create_pg_schema("bench_hist")
    url = pg_schema_url(schema)
    engine = make_engine(url)
    try:
        print(json.dumps(migration(engine, args) if args.migration else run(engine, url, args)))
    finally:
        engine.dispose()
        if not args.keep:
            drop_pg_schema(schema)


def run(engine: Engine, url: str, args: argparse.Namespace) -> dict[str, object]:
    upgrade(engine)
    with engine.begin() as conn:
        this = Month.of(datetime.now(UTC))
        ensure_month_partitions(conn, [this.plus(-i) for i in range(13)])
    populate(engine, args.schedules, args.due, datetime.now(UTC))
    runtime = DatabaseRuntime(Settings(database_url=url), engine, make_session_factory(engine))
    measure(runtime, args)  # warm the pool and the caches
    before = measure(runtime, args)
    print(f"no history: {before}")
    started = time.perf_counter()
    add_history(engine, args.history, args.schedules)
    print(f"inserted {args.history:,} historical runs in {time.perf_counter() - started:.0f} s")
    measure(runtime, args)  # warm the caches for the new tables' pages, as before
    after = measure(runtime, args)
    print(f"{args.history:,} historical runs: {after}")
    begun = time.perf_counter()
    pruned = prune_run_history(engine, older_than_days=300, batch=5000, max_batches=1)
    prune_ms = (time.perf_counter() - begun) * 1000
    print(f"history retention: {pruned:,} runs deleted in one batch, {prune_ms:.0f} ms")
    begun = time.perf_counter()
    dropped = drop_expired_months(engine, cutoff=datetime.now(UTC) - timedelta(days=300))
    drop_ms = (time.perf_counter() - begun) * 1000
    print(f"partition retention: {len(dropped)} months dropped in {drop_ms:.0f} ms")
    final = measure(runtime, args)
    print(f"after retention: {final}")
    return {
        "history": args.history,
        "schedules": args.schedules,
        "due": args.due,
        "before": before,
        "after": after,
        "prune_batch_ms": round(prune_ms),
        "months_dropped": len(dropped),
        "drop_months_ms": round(drop_ms),
        "after_retention": final,
    }


def migration(engine: Engine, args: argparse.Namespace) -> dict[str, object]:
    """Migration 0010 up and down over ``args.history`` runs written at the revision before."""
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0010").down_revision
    upgrade(engine, str(before))
    populate(engine, args.schedules, args.due, datetime.now(UTC))
    add_history(engine, args.history, args.schedules, partitioned=False)
    begun = time.perf_counter()
    upgrade(engine)
    up = time.perf_counter() - begun
    print(f"migration 0010 over {args.history:,} runs: {up:.1f} s")
    begun = time.perf_counter()
    downgrade(engine, str(before))
    down = time.perf_counter() - begun
    print(f"its downgrade: {down:.1f} s")
    return {
        "history": args.history,
        "upgrade_seconds": round(up, 1),
        "downgrade_seconds": round(down, 1),
    }


def measure(runtime: DatabaseRuntime, args: argparse.Namespace) -> dict[str, float]:
    """One tick over the due schedules, then claims of its runs; the state is reset after."""
    begun = time.perf_counter()
    result = run_tick(runtime, lambda _ids: None)
    tick = time.perf_counter() - begun
    assert result.created == args.due, result
    claims = []
    for run_id in result.run_ids[: args.claims]:
        begun = time.perf_counter()
        with transaction(runtime.sessions) as session:
            assert claim_run(session, run_id, lease_seconds=60)
        claims.append((time.perf_counter() - begun) * 1000)
    with runtime.engine.begin() as conn:  # the same schedules due again, their runs gone
        conn.execute(
            text(
                "UPDATE schedules SET next_run_at = now() - interval '1 minute', "
                "last_run_id = NULL WHERE last_run_id IS NOT NULL"
            )
        )
        conn.execute(text("DELETE FROM runs WHERE id = ANY(:ids)"), {"ids": result.run_ids})
    claims.sort()
    return {
        "tick_seconds": round(tick, 3),
        "claim_ms_median": round(statistics.median(claims), 2),
        "claim_ms_p95": round(claims[int(len(claims) * 0.95)], 2),
    }


def add_history(engine: Engine, count: int, schedules: int, *, partitioned: bool = True) -> None:
    """``count`` succeeded runs of the benchmark's grants, finished over the last year
    (``partitioned``: at head, where category rows carry their run's ``queued_at``)."""
    queued_at = ("run_queued_at, ", "queued_at, ") if partitioned else ("", "")
    for start in range(0, count, _CHUNK):
        size = min(_CHUNK, count - start)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (app_id, schedule_id, authorization_id, destination_id, "
                    "categories, status, attempts, max_attempts, queued_at, started_at, "
                    "finished_at, records, bytes) "
                    "SELECT (g % 100) % 10 + 1, g % :schedules + 1, g % 100 + 1, "
                    "(g % 100) % 10 + 1, "
                    "'posts', 'succeeded', 1, 5, t, t, t + interval '30 seconds', 10, 1000 "
                    "FROM (SELECT g, now() - ((g * 7919) % 31536000) * interval '1 second' AS t "
                    "      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g) s"
                ),
                {"lo": start + 1, "hi": start + size, "schedules": schedules},
            )
            conn.execute(
                text(
                    f"INSERT INTO run_categories (run_id, {queued_at[0]}category, status, "
                    "records, bytes, parts) "
                    f"SELECT id, {queued_at[1]}'posts', 'done', 10, 1000, 1 FROM runs "
                    "WHERE id > (SELECT coalesce(max(run_id), 0) FROM run_categories)"
                )
            )
        print(f"  {start + size:,} runs", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE runs"))
        conn.execute(text("VACUUM ANALYZE run_categories"))


if __name__ == "__main__":
    main()
