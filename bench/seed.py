"""Benchmark: seed the platform store on PostgreSQL, then read one large user's change feed.

In a throwaway schema on PORTABILITY_BENCH_PG_URL (default the local ``test`` database), dropped
at the end:

1. ``seed`` ``--users`` x ``--records-per-user`` (default 1000 x 1000: a million records and a
   million change rows, written with binary COPY);
2. seed one more user with ``--read-records`` records (default 1,000,000) and read all four of
   their categories through ``SqlChangeFeed.read`` (server-side cursor), twice: right after the
   load (the first read also sets PostgreSQL's hint bits) and again warm.

Prints progress, then, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.categories import Category  # noqa: E402
from portability.db.engine import make_engine  # noqa: E402
from portability.db.migrate import upgrade  # noqa: E402
from portability.devtools.pg_schema import scratch_schema  # noqa: E402
from portability.platform.seed import seed  # noqa: E402
from portability.sources.sql import SqlChangeFeed  # noqa: E402

PG = os.environ.get("PORTABILITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def settled_watermark(engine: Engine, source: SqlChangeFeed, timeout: float = 300.0) -> int:
    """The watermark once it passes everything seeded (other sessions' transactions on a shared
    server can hold it back for a while)."""
    with engine.connect() as conn:
        top = int(conn.execute(text("SELECT max(txid) FROM platform_changes")).scalar_one())
    deadline = time.monotonic() + timeout
    while (mark := source.watermark()) <= top:
        if time.monotonic() > deadline:
            raise SystemExit(f"watermark {mark} stuck below txid {top}: a transaction is open")
        time.sleep(0.05)
    return mark


def read_user(
    source: SqlChangeFeed, user_id: str, mark: int, batch_size: int
) -> tuple[int, int, float]:
    """Read every category of ``user_id`` below ``mark``: rows, bytes, seconds."""
    rows = size = 0
    started = time.perf_counter()
    for category in Category:
        for batch in source.read(user_id, category, 0, mark, batch_size):
            rows += batch.records
            size += len(batch.body)
    return rows, size, time.perf_counter() - started


def run(args: argparse.Namespace, engine: Engine) -> dict[str, object]:
    upgrade(engine)
    print(f"seeding {args.users} x {args.records_per_user} ...", flush=True)
    report = seed(engine, users=args.users, records_per_user=args.records_per_user)
    seed_rate = report.records / report.seconds
    print(
        f"seeded {report.records:,} records (+ as many change rows) in {report.seconds:.1f}s: "
        f"{seed_rate:,.0f} records/s, {2 * seed_rate:,.0f} rows/s",
        flush=True,
    )

    print(f"seeding 1 x {args.read_records} for the read ...", flush=True)
    big = seed(engine, users=1, records_per_user=args.read_records, seed=7)
    user_id = big.user_ids[0]
    print(f"  {big.records:,} records in {big.seconds:.1f}s", flush=True)

    source = SqlChangeFeed(engine)
    mark = settled_watermark(engine, source)
    rows, size, cold = read_user(source, user_id, mark, args.batch_size)
    _, _, warm = read_user(source, user_id, mark, args.batch_size)
    print(
        f"read {rows:,} rows ({size / 1e6:,.0f} MB) of {user_id}: first {cold:.2f}s "
        f"({rows / cold:,.0f} rows/s), warm {warm:.2f}s ({rows / warm:,.0f} rows/s)",
        flush=True,
    )
    return {
        "seed_users": args.users,
        "seed_records_per_user": args.records_per_user,
        "seed_records": report.records,
        "seed_seconds": round(report.seconds, 2),
        "seed_records_per_s": round(seed_rate),
        "seed_rows_per_s": round(2 * seed_rate),
        "read_rows": rows,
        "read_mb": round(size / 1e6, 1),
        "read_batch_size": args.batch_size,
        "read_first_seconds": round(cold, 3),
        "read_first_rows_per_s": round(rows / cold),
        "read_warm_seconds": round(warm, 3),
        "read_warm_rows_per_s": round(rows / warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--records-per-user", type=int, default=1000)
    parser.add_argument("--read-records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    args = parser.parse_args()

    with scratch_schema(PG, "bench_seed") as url:
        engine = make_engine(url)
        try:
            result = run(args, engine)
        finally:
            engine.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
