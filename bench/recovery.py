"""Benchmark: how long a run waits after its worker process is SIGKILLed, with default settings.

A real Celery worker (prefork, one child) on Redis exports one user to SeaweedFS; when the
first part is in the bucket, the child running the export is killed with SIGKILL (an OOM kill,
a hard time limit). Celery's main process requeues the message; it finds the dead attempt's
lease still live and comes back when the lease would lapse (``PORTABILITY_LEASE_SECONDS``,
default 30 s), then takes the run over. No beat runs, so the reconciler cannot help. Prints,
last, one JSON line: seconds from the kill to the takeover and to the run's success.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from cryptography.fernet import Fernet
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability.crypto import CredentialBox  # noqa: E402
from portability.db.engine import make_engine, make_session_factory  # noqa: E402
from portability.db.migrate import upgrade  # noqa: E402
from portability.devtools.local_s3 import start_seaweedfs  # noqa: E402
from portability.devtools.pg_schema import scratch_schema  # noqa: E402
from portability.devtools.sample import register_sample_transfer  # noqa: E402
from portability.platform.seed import seed  # noqa: E402
from portability.runs import create_run  # noqa: E402
from portability.settings import Settings  # noqa: E402
from portability.signing import new_signing_key_text  # noqa: E402

PG = os.environ.get("PORTABILITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("PORTABILITY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=600_000)
    args = parser.parse_args()
    with scratch_schema(PG, "bench_recovery") as url:
        print(json.dumps(measure(args.records, url)))


def measure(records: int, url: str) -> dict[str, Any]:
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    s3 = start_seaweedfs(workdir / "s3")
    worker: subprocess.Popen[bytes] | None = None
    try:
        env = _environment(url, workdir)
        settings = Settings(
            data_dir=workdir,
            database_url=url,
            encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
            pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
            manifest_signing_keys=env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
            allow_http_endpoints=True,
            allow_private_endpoints=True,
        )
        engine = make_engine(url)
        upgrade(engine)
        user_id = seed(engine, users=1, records_per_user=records, seed=1).user_ids[0]
        with engine.begin() as conn:
            conn.execute(text("UPDATE platform_users SET country = 'DE'"))
        bucket = s3.create_bucket("bench-recovery")
        destination = s3.destination(bucket)
        destination.probe()
        sessions = make_session_factory(engine)
        with sessions.begin() as session:
            sample = register_sample_transfer(
                session,
                CredentialBox(settings.resolved_encryption_keys()),
                user_id=user_id,
                categories="activity,direct_messages,posts,profile",
                eligible_countries=settings.eligible_countries,
                bucket=bucket,
                endpoint_url=s3.endpoint_url,
                access_key_id=s3.access_key_id,
                secret_access_key=s3.secret_access_key,
                prefix="bench",
                endpoint_policy=settings.endpoint_policy,
                app_name="Bench",
            )
            run_id = create_run(
                session,
                app_id=None,
                authorization_id=sample.authorization_id,
                destination_id=sample.destination_id,
                categories="activity,direct_messages,posts,profile",
            ).id
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "workers", "worker",
             "--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        from workers.app import EXPORT_TASK, create_app

        create_app(Settings(data_dir=workdir, broker_url=REDIS)).send_task(
            EXPORT_TASK, args=[run_id]
        )
        _wait(lambda: any("/parts/" in o.key for o in destination.list_objects("")), 180)
        children = psutil.Process(worker.pid).children(recursive=True)
        killed = time.monotonic()
        for child in children:
            child.send_signal(signal.SIGKILL)
        print(f"killed {len(children)} pool process(es) mid-run", file=sys.stderr)

        def state() -> tuple[str, int]:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT status, attempts FROM runs WHERE id = :r"), {"r": run_id}
                ).one()
            return str(row[0]), int(row[1])

        _wait(lambda: state()[1] >= 2, 300)
        taken_over = time.monotonic() - killed
        _wait(lambda: state()[0] in {"succeeded", "failed", "cancelled"}, 300)
        finished = time.monotonic() - killed
        status, attempts = state()
        engine.dispose()
        return {
            "records": records,
            "lease_seconds": settings.lease_seconds,
            "seconds_to_takeover": round(taken_over, 1),
            "seconds_to_finish": round(finished, 1),
            "status": status,
            "attempts": attempts,
        }
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        s3.stop()


def _environment(url: str, workdir: Path) -> dict[str, str]:
    """Default settings, except where the data is (and the bench's loopback S3 server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env.update(
        MALLOC_ARENA_MAX="2",
        PORTABILITY_DATA_DIR=str(workdir),
        PORTABILITY_DATABASE_URL=url,
        PORTABILITY_BROKER_URL=REDIS,
        PORTABILITY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PORTABILITY_PSEUDONYM_KEY=secrets.token_urlsafe(32),
        PORTABILITY_MANIFEST_SIGNING_KEYS=new_signing_key_text(),
        PORTABILITY_ALLOW_HTTP_ENDPOINTS="true",
        PORTABILITY_ALLOW_PRIVATE_ENDPOINTS="true",
    )
    return env


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
