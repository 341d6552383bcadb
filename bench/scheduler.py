"""Benchmark the scheduler tick on PostgreSQL with a real Redis broker.

Registers ``--schedules`` schedules (default 1,000,000) in a throwaway schema, ``--due`` of
them (default 10,000) already due, then times:

- the tick that claims the due ones, creates their runs and enqueues them to Redis
  (``claim_seconds``, the median of ``--repeat`` ticks with the same schedules made due
  again in between; ``enqueue_per_s`` is messages per second of publishing alone);
- ticks with nothing due (``idle_tick_ms``, the median of ``--idle-ticks``).

Prints its figures; the last line is one JSON object. ``--explain`` prints the claim query's
plan (it must walk ``ix_schedules_due``). Needs PostgreSQL and Redis on loopback (see
tests/fixtures/db.py for the URL); Redis db 14 is flushed.

    .venv/bin/python bench/scheduler.py [--schedules N] [--due N] [--publish direct]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
from celery import Celery
from sqlalchemy import Engine, text

from portability.categories import ALL_CATEGORIES, format_categories
from portability.db.engine import make_engine, make_session_factory
from portability.db.migrate import upgrade
from portability.settings import Settings
from schedules import DatabaseRuntime, run_tick
from schedules.claim import claim_statement
from tests.fixtures.db import create_pg_schema, drop_pg_schema, pg_schema_url
from workers._publish import EXPORT_TASK, publish_runs

REDIS_URL = "redis://127.0.0.1:6379/14"
APPS = 10
GRANTS = 100
CRONS = ["@daily", "0 */6 * * *", "30 2 * * *", "@weekly", "0 9 * * 1-5"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=Settings().scheduler_batch_size)
    parser.add_argument("--idle-ticks", type=int, default=50)
    parser.add_argument(
        "--repeat", type=int, default=3, help="claim ticks (due set reset between); median"
    )
    parser.add_argument(
        "--publish",
        choices=["direct", "batched", "apply_async"],
        default="direct",
        help="direct: workers._publish LPUSH path; batched: send_task in Producer.batch(); "
        "apply_async: send_task per message, as workers.app.enqueue_runs does today",
    )
    parser.add_argument("--explain", action="store_true", help="print the claim query plan")
    parser.add_argument("--keep", action="store_true", help="do not drop the schema")
    args = parser.parse_args()

    schema = create_pg_schema("bench_sched")
    url = pg_schema_url(schema)
    engine = make_engine(url)
    try:
        figures = run(engine, url, args)
    finally:
        engine.dispose()
        if not args.keep:
            drop_pg_schema(schema)
        redis.Redis.from_url(REDIS_URL).flushdb()
    print(json.dumps(figures))


def run(engine: Engine, url: str, args: argparse.Namespace) -> dict[str, object]:
    upgrade(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    populate(engine, args.schedules, args.due, now)
    print(
        f"registered {args.schedules:,} schedules ({args.due:,} due) in "
        f"{time.perf_counter() - started:.1f} s"
    )

    plan = explain(engine, now, args.batch_size)
    if args.explain:
        print("\n".join(plan))
    index_used = any("ix_schedules_due" in line for line in plan)
    print(f"claim query walks ix_schedules_due: {index_used}")

    settings = Settings(
        database_url=url, broker_url=REDIS_URL, scheduler_batch_size=args.batch_size
    )
    from workers.app import create_app

    app = create_app(settings)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    runtime = DatabaseRuntime(settings, engine, make_session_factory(engine))
    publishing = {"seconds": 0.0, "messages": 0}
    rates: list[float] = []

    def enqueue(run_ids: list[int]) -> None:
        begun = time.perf_counter()
        publish(app, run_ids, args.publish)
        publishing["seconds"] += time.perf_counter() - begun
        publishing["messages"] += len(run_ids)

    with engine.connect() as conn:  # warm the pool and the broker connection
        conn.execute(text("SELECT 1"))
    with app.connection_for_write() as connection:
        connection.ensure_connection()

    claims = []
    for round_ in range(args.repeat):
        if round_:
            reset(engine, broker)
        publishing.update(seconds=0.0, messages=0)
        begun = time.perf_counter()
        result = run_tick(runtime, enqueue)
        claims.append(time.perf_counter() - begun)
        rates.append(publishing["messages"] / publishing["seconds"])
        queued = broker.llen("portability")
        with engine.connect() as conn:
            runs = conn.execute(
                text("SELECT count(*), count(DISTINCT schedule_id) FROM runs")
            ).one()
        print(
            f"tick: {result.created:,} runs in {result.batches} batches, {claims[-1]:.3f} s "
            f"(publishing {publishing['seconds']:.3f} s); {queued:,} messages in Redis; "
            f"{runs[0]:,} runs for {runs[1]:,} schedules"
        )
        if not (result.created == args.due == queued == runs[0] == runs[1]):
            raise SystemExit("the tick did not create and enqueue exactly one run per due schedule")

    idle = []
    for _ in range(args.idle_ticks):
        begun = time.perf_counter()
        empty = run_tick(runtime, enqueue)
        idle.append((time.perf_counter() - begun) * 1000)
        assert empty.claimed == 0, empty
    print(
        f"idle tick: first {idle[0]:.2f} ms, median {statistics.median(idle):.2f} ms, "
        f"max {max(idle):.2f} ms over {len(idle)}"
    )

    return {
        "schedules": args.schedules,
        "due": args.due,
        "claim_seconds": round(statistics.median(claims), 3),
        "claim_seconds_min": round(min(claims), 3),
        "enqueue_per_s": round(statistics.median(rates)),
        "idle_tick_ms": round(statistics.median(idle), 2),
        "batch_size": args.batch_size,
        "publish": args.publish,
        "index_used": index_used,
    }


def populate(engine: Engine, total: int, due: int, now: datetime) -> None:
    """Few apps, grants and destinations; ``total`` schedules by COPY, every k-th one due."""
    categories = format_categories(ALL_CATEGORIES)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO apps (id, name, contact_email, use_case, status, api_key_hash, "
                "created_at) SELECT g, 'app ' || g, 'dev' || g || '@example.com', "
                "'benchmark application', 'approved', md5(g::text), now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": APPS},
        )
        conn.execute(
            text(
                "INSERT INTO platform_users (id, country, created_at) "
                "SELECT 'user' || g, 'DE', now() FROM generate_series(1, :n) g"
            ),
            {"n": GRANTS},
        )
        conn.execute(
            text(
                "INSERT INTO authorizations (id, user_id, app_id, categories, access, granted_at) "
                "SELECT g, 'user' || g, (g - 1) % :apps + 1, :cats, 'ongoing', now() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": GRANTS, "apps": APPS, "cats": categories},
        )
        conn.execute(
            text(
                "INSERT INTO destinations (id, app_id, name, region, bucket, prefix, "
                "addressing_style, compression, credentials_encrypted, created_at) "
                "SELECT g, g, 'default', 'us-east-1', 'bucket-' || g, '', 'path', 'gzip', "
                "'sealed', now() FROM generate_series(1, :n) g"
            ),
            {"n": APPS},
        )
    every = max(1, total // max(1, due))
    rng = random.Random(7)
    created = now.isoformat()
    buffer = io.StringIO()
    due_left = due
    for i in range(1, total + 1):
        grant = (i - 1) % GRANTS + 1
        app = (grant - 1) % APPS + 1
        if due_left and i % every == 0:
            next_run_at = now - timedelta(seconds=rng.uniform(1, 3600))
            due_left -= 1
        else:
            next_run_at = now + timedelta(seconds=rng.uniform(7_200, 93_600))  # after the run
        cron = CRONS[i % len(CRONS)]
        zone = ZONES[(i // len(CRONS)) % len(ZONES)]
        buffer.write(
            f"{i}\t{app}\t{grant}\t{app}\t{categories}\t{cron}\t{zone}\t"
            f"{next_run_at.isoformat()}\tf\t0\t{created}\n"
        )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(
            "COPY schedules (id, app_id, authorization_id, destination_id, categories, cron, "
            "timezone, next_run_at, is_paused, skipped_runs, created_at) FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE schedules"))
        conn.execute(text("ANALYZE"))


def reset(engine: Engine, broker: redis.Redis) -> None:
    """Make the same schedules due again, with no runs and an empty queue."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE schedules SET next_run_at = now() - interval '1 minute', "
                "last_run_id = NULL WHERE last_run_id IS NOT NULL"
            )
        )
        conn.execute(text("DELETE FROM runs"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE schedules"))
        conn.execute(text("VACUUM ANALYZE runs"))
    broker.flushdb()


def explain(engine: Engine, now: datetime, batch_size: int) -> list[str]:
    """EXPLAIN ANALYZE of the claim statement, rolled back (it takes row locks)."""
    statement = claim_statement(now, batch_size).compile(
        engine, compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}").all()
        conn.rollback()
    return [row[0] for row in rows]


def publish(app: Celery, run_ids: list[int], how: str) -> None:
    if how == "direct":
        publish_runs(app, run_ids)
        return
    with app.producer_or_acquire() as producer:
        if how == "batched":
            with producer.batch(max_size=1000):
                for run_id in run_ids:
                    app.send_task(EXPORT_TASK, args=[run_id], producer=producer)
        else:
            for run_id in run_ids:
                app.send_task(EXPORT_TASK, args=[run_id], producer=producer)


if __name__ == "__main__":
    main()
