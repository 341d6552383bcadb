"""Benchmark: full export of one user with N records, then an incremental run after K changes.

PostgreSQL (a throwaway schema on PORTABILITY_BENCH_PG_URL, default the local `test` database)
to a local S3-compatible server (SeaweedFS by default, ``--s3 moto`` for moto's server). Each
export runs in a fresh child process so ``peak_rss_mb`` is the export's own peak, not the
seeder's. Prints, last, one JSON line:
records, seconds, records_per_s, mb_per_s, peak_rss_mb, incremental_seconds, incremental_ratio
(the median of ``--rounds`` incremental runs, each after ``--changes`` new changes; the slowest
is ``incremental_max_seconds``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.crypto import CredentialBox  # noqa: E402
from portability.db.engine import make_engine, make_session_factory  # noqa: E402
from portability.db.migrate import upgrade  # noqa: E402
from portability.devtools.local_s3 import start_moto, start_seaweedfs  # noqa: E402
from portability.devtools.pg_schema import scratch_schema  # noqa: E402
from portability.devtools.sample import register_sample_transfer  # noqa: E402
from portability.platform.mutate import mutate  # noqa: E402
from portability.platform.seed import seed  # noqa: E402
from portability.runs import create_run  # noqa: E402
from portability.settings import Settings  # noqa: E402
from portability.signing import new_signing_key_text  # noqa: E402

PG = os.environ.get("PORTABILITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CATEGORIES = "activity,direct_messages,posts,profile"


def child(auth_id: int, dest_id: int, rounds: int) -> None:
    """In one fresh worker-like process: a full export, then ``rounds`` times K changes and an
    incremental run.

    The incremental runs are measured in the same, warm process, as a long-lived worker runs
    them.
    """
    from portability.export import execute_run
    from portability.runtime import Runtime

    _trace("child imported")
    runtime = Runtime.from_settings(Settings())
    results = []
    for phase in ["full"] + ["incremental"] * rounds:
        if phase == "incremental":
            # The parent applies the K changes meanwhile: the mutator's memory is not ours.
            print(json.dumps({"ready_for": "changes"}), flush=True)
            sys.stdin.readline()
        with runtime.sessions.begin() as session:
            run_id = create_run(
                session,
                app_id=None,
                authorization_id=auth_id,
                destination_id=dest_id,
                categories=CATEGORIES,
            ).id
        profiler = _start_profile()
        _trace(f"{phase} starts")
        started = time.perf_counter()
        outcome = execute_run(runtime, run_id, hooks=_memory_hooks())
        seconds = time.perf_counter() - started
        _stop_profile(profiler)
        with runtime.engine.connect() as conn:
            records, size = conn.execute(
                text("SELECT records, bytes FROM runs WHERE id = :id"), {"id": run_id}
            ).one()
        results.append(
            {
                "phase": phase,
                "status": outcome.status,
                "message": outcome.message,
                "seconds": seconds,
                "records": records,
                "bytes": size,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    print(json.dumps(results))


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that across fork and
    exec, so a child would report the seeding parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _trace(what: str) -> None:
    if os.environ.get("BENCH_MEMTRACE"):
        current = int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20
        print(f"{what}: rss {current:.0f} MB, peak {_peak_rss_mb():.0f} MB", file=sys.stderr)


def _memory_hooks() -> Any:
    from portability.export import ExportHooks

    if not os.environ.get("BENCH_MEMTRACE"):
        return None
    return ExportHooks(after_part=lambda key: _trace(f"part {key.rsplit('/', 3)[-3:]}"))


def _start_profile() -> Any:
    if not os.environ.get("BENCH_PROFILE"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _stop_profile(profiler: Any) -> None:
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)


def run_child(
    args: list[str], env: dict[str, str], apply_changes: Any, rounds: int
) -> list[dict[str, Any]]:
    """Run the child; each time it asks, apply the changes, then let it run an incremental."""
    child_proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child_proc.stdin is not None and child_proc.stdout is not None
    for round_ in range(rounds):
        line = child_proc.stdout.readline()
        if '"ready_for"' not in line:
            break  # the child failed; communicate() tells
        apply_changes(round_)
        child_proc.stdin.write("go\n")
        child_proc.stdin.flush()
    out, err = child_proc.communicate()
    if child_proc.returncode != 0:
        raise SystemExit(f"export child failed:\n{err[-3000:]}")
    if os.environ.get("BENCH_PROFILE") or os.environ.get("BENCH_MEMTRACE"):
        print(err, file=sys.stderr)
    results: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])
    for result in results:
        if result["status"] != "succeeded":
            raise SystemExit(f"export did not succeed: {result}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="incremental runs, each after --changes new changes; the median is reported",
    )
    parser.add_argument("--s3", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    parser.add_argument(
        "--hold-open",
        action="store_true",
        help="hold a write transaction open in another database of the server for the whole "
        "bench (a report, a migration, a forgotten session): deliveries must not wait for it",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="add this many older versions of every record to the feed before the full export "
        "(a first delivery reads the current state, so its cost must not grow with them)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        auth, dest, rounds = args.child
        child(int(auth), int(dest), int(rounds))
        return

    with scratch_schema(PG, "bench_export") as url, _held_open(args.hold_open) as held:
        result = measure(args, url)
        result["held_open_transaction"] = held
    print(json.dumps(result))


@contextlib.contextmanager
def _held_open(hold: bool) -> Iterator[int | None]:
    """A transaction that took an id and stays open in the server's ``postgres`` database."""
    if not hold:
        yield None
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    other = create_engine(make_url(PG).set(database="postgres"), poolclass=NullPool)
    with other.connect() as conn:
        conn.begin()
        txid = int(conn.exec_driver_sql("SELECT pg_current_xact_id()::text::bigint").scalar_one())
        print(f"holding transaction {txid} open in database postgres", file=sys.stderr)
        yield txid
        conn.rollback()
    other.dispose()


def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Seed one user in the schema at ``url``, start S3, and time the child's exports."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    s3 = start_seaweedfs(workdir / "s3") if args.s3 == "seaweedfs" else start_moto()
    try:
        key = Fernet.generate_key().decode()
        pseudonym_key = secrets.token_urlsafe(32)
        signing_keys = new_signing_key_text()
        # The bench's own S3 server listens on http://127.0.0.1.
        settings = Settings(
            data_dir=workdir,
            database_url=url,
            encryption_key=key,
            pseudonym_key=pseudonym_key,
            manifest_signing_keys=signing_keys,
            allow_http_endpoints=True,
            allow_private_endpoints=True,
        )
        engine = make_engine(url)
        upgrade(engine)
        t = time.perf_counter()
        report = seed(engine, users=1, records_per_user=args.records, seed=1)
        print(
            f"seeded {report.records:,} records in {time.perf_counter() - t:.1f}s", file=sys.stderr
        )
        user_id = report.user_ids[0]
        with engine.begin() as conn:
            conn.execute(text("UPDATE platform_users SET country = 'DE'"))
            top = conn.execute(text("SELECT max(position) FROM platform_changes")).scalar()
            for _ in range(args.history):  # older versions of every record, in the feed only
                conn.execute(
                    text(
                        "INSERT INTO platform_changes"
                        " (user_id, category, record_id, op, changed_at, line)"
                        " SELECT user_id, category, record_id, op, changed_at, line"
                        " FROM platform_changes WHERE user_id = :u AND position <= :top"
                    ),
                    {"u": user_id, "top": top},
                )
            conn.execute(text("ANALYZE"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # Settle the freshly seeded tables now, not in an autovacuum during the measurement.
            conn.execute(text("VACUUM (ANALYZE) platform_changes"))
        bucket = s3.create_bucket("bench-export")
        # Probe the destination as registering it does: the server's first write to a new
        # bucket (SeaweedFS grows its volumes then, seconds at times) stays out of the figures.
        t = time.perf_counter()
        s3.destination(bucket).probe()
        print(f"destination probed in {time.perf_counter() - t:.2f}s", file=sys.stderr)
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            sample = register_sample_transfer(
                session,
                CredentialBox(key.encode()),
                user_id=user_id,
                categories=CATEGORIES,
                eligible_countries=settings.eligible_countries,
                bucket=bucket,
                endpoint_url=s3.endpoint_url,
                access_key_id=s3.access_key_id,
                secret_access_key=s3.secret_access_key,
                prefix="bench",
                endpoint_policy=settings.endpoint_policy,
                compression=args.compression,
                app_name="Bench",
            )
            ids = (sample.authorization_id, sample.destination_id)
        # The export's tuning settings (PORTABILITY_EXPORT_*, PORTABILITY_S3_*) pass through;
        # where the data is comes from the bench.
        env = dict(os.environ)
        env.setdefault("MALLOC_ARENA_MAX", "2")  # as the worker runs (Makefile, Dockerfile)
        env.update(
            PORTABILITY_DATABASE_URL=url,
            PORTABILITY_ENCRYPTION_KEY=key,
            PORTABILITY_PSEUDONYM_KEY=pseudonym_key,
            PORTABILITY_MANIFEST_SIGNING_KEYS=signing_keys,
            PORTABILITY_ALLOW_HTTP_ENDPOINTS="true",
            PORTABILITY_ALLOW_PRIVATE_ENDPOINTS="true",
            PORTABILITY_DATA_DIR=str(workdir),
        )

        def apply_changes(round_: int) -> None:
            deletes = max(1, args.changes // 10)
            updates = args.changes - deletes
            mutate(engine, user_id=user_id, updates=updates, deletes=deletes, seed=3 + round_)

        rounds = max(1, args.rounds)
        full, *incs = run_child([str(ids[0]), str(ids[1]), str(rounds)], env, apply_changes, rounds)
        print(f"full: {full}", file=sys.stderr)
        for inc in incs:
            print(f"incremental: {inc}", file=sys.stderr)
        # The history check of an increment: one HEAD of the stream's last manifest (the
        # streams of a run check concurrently, so a run pays about one of these).
        destination = s3.destination(bucket)
        manifest = next(
            info.key for info in destination.list_objects("bench/") if "/manifests/" in info.key
        )
        heads = []
        for _ in range(50):
            t = time.perf_counter()
            destination.head_object(manifest)
            heads.append(time.perf_counter() - t)
        samples = sorted(inc["seconds"] for inc in incs)
        median = statistics.median(samples)
        result: dict[str, Any] = {
            "records": int(full["records"]),
            "seconds": round(full["seconds"], 3),
            "records_per_s": round(full["records"] / full["seconds"]),
            "mb_per_s": round(full["bytes"] / 1e6 / full["seconds"], 1),
            "peak_rss_mb": round(full["peak_rss_mb"], 1),
            "incremental_records": int(incs[-1]["records"]),
            "incremental_seconds": round(median, 4),
            "incremental_ratio": round(median / full["seconds"], 5),
            "incremental_rounds": rounds,
            "incremental_max_seconds": round(samples[-1], 4),
            "history_check_ms": round(statistics.median(heads) * 1000, 2),
            "s3": s3.kind,
            "compression": args.compression,
            "feed_versions_per_record": 1 + args.history,
        }
        engine.dispose()
        return result
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
