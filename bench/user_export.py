"""Benchmark: "download your data" for one user with N records, every category, JSON format.

PostgreSQL (a throwaway schema on PORTABILITY_BENCH_PG_URL, default the local `test` database)
to a local S3-compatible server (SeaweedFS by default, ``--s3 moto`` for moto's server). The
export runs in a fresh child process, as a worker would, so ``peak_rss_mb`` is the export's own
peak, not the seeder's. Prints, last, one JSON line: records, seconds, records_per_s,
archive_mb, volumes, peak_rss_mb. The floor is half the full transfer's throughput
(bench/export.py, ~320k records/s) and a peak RSS under 250 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.db.base import utcnow  # noqa: E402
from portability.db.engine import make_engine, make_session_factory  # noqa: E402
from portability.db.migrate import upgrade  # noqa: E402
from portability.devtools.local_s3 import start_moto, start_seaweedfs  # noqa: E402
from portability.devtools.pg_schema import scratch_schema  # noqa: E402
from portability.platform.seed import seed  # noqa: E402
from portability.settings import Settings  # noqa: E402

PG = os.environ.get("PORTABILITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def child(export_id: int) -> None:
    """One export in a fresh worker-like process; its figures as one JSON line."""
    from portability.runtime import Runtime
    from portability.user_exports.run import run_user_export

    runtime = Runtime.from_settings(Settings())
    profiler = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    outcome = run_user_export(runtime, export_id)
    seconds = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    with runtime.engine.connect() as conn:
        records, size, volumes = conn.execute(
            text("SELECT records, size_bytes, volumes FROM user_exports WHERE id = :id"),
            {"id": export_id},
        ).one()
    print(
        json.dumps(
            {
                "status": outcome.status,
                "seconds": seconds,
                "records": records,
                "bytes": size,
                "volumes": volumes,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    )


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM), not the parent's carried over by fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-user-export-"))
    s3 = start_seaweedfs(workdir / "s3") if args.s3 == "seaweedfs" else start_moto()
    try:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        report = seed(engine, users=1, records_per_user=args.records, seed=1)
        print(
            f"seeded {report.records:,} records in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        bucket = s3.create_bucket("bench-user-export")
        # SeaweedFS's first write to a new bucket can take seconds while it grows its volumes:
        # probed before measuring, as bench/export.py does.
        s3.destination(bucket).probe()
        env = dict(os.environ)
        env.setdefault("MALLOC_ARENA_MAX", "2")  # as the worker runs (Makefile, Dockerfile)
        env.update(
            PORTABILITY_DATABASE_URL=url,
            PORTABILITY_DATA_DIR=str(workdir),
            PORTABILITY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
            PORTABILITY_USER_EXPORT_ENDPOINT_URL=s3.endpoint_url,
            PORTABILITY_USER_EXPORT_BUCKET=bucket,
            PORTABILITY_USER_EXPORT_ACCESS_KEY_ID=s3.access_key_id,
            PORTABILITY_USER_EXPORT_SECRET_ACCESS_KEY=s3.secret_access_key,
            PORTABILITY_USER_EXPORT_VOLUME_BYTES=str(args.volume_bytes),
        )
        settings = Settings(data_dir=workdir, user_export_bucket=bucket)  # the request's guards
        from portability.user_exports import lifecycle

        with make_session_factory(engine).begin() as session:
            export_id = lifecycle.request_export(
                session,
                settings,
                user_id=report.user_ids[0],
                categories="all",
                fmt=args.format,
                now=utcnow(),
            ).id
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(export_id)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if os.environ.get("BENCH_PROFILE"):
            print(done.stderr, file=sys.stderr)
        if done.returncode != 0:
            raise SystemExit(f"export child failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        if result["status"] != "ready":
            raise SystemExit(f"export did not finish: {result}")
        engine.dispose()
        return {
            "records": result["records"],
            "seconds": round(result["seconds"], 2),
            "records_per_s": round(result["records"] / result["seconds"]),
            "archive_mb": round(result["bytes"] / 2**20, 1),
            "volumes": result["volumes"],
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "format": args.format,
            "s3": s3.kind,
        }
    finally:
        s3.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["json", "text"], default="json")
    parser.add_argument("--s3", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--volume-bytes", type=int, default=2 * 1024**3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    with scratch_schema(PG, "bench_user_export") as url:
        result = measure(args, url)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
