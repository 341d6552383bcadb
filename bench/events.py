"""Benchmark: webhook delivery of 10,000 events to a local receiver by real Celery workers.

PostgreSQL (a throwaway schema on PORTABILITY_BENCH_PG_URL, default the local `test` database),
Redis (PORTABILITY_BENCH_REDIS_URL, default db 7), ``--processes`` worker processes on the
``portability.events`` queue, the dispatcher in this process every 0.1 s, and a loopback
receiver answering 204. Three measurements:

1. burst: 10,000 events recorded at once (in transactions of 100): events/s overall and per
   worker process, and the delay from each event's commit to its arrival (p50/p99, which here
   is mostly the backlog's queueing);
2. paced: ``--paced`` events at ``--rate`` per second: the delay when the workers keep up;
3. export: a full export of ``--records`` records, in this process, alone and then again while
   the workers deliver a backlog of 10,000 events flat out (seconds, and the slowdown).

Prints, last, one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portability import registry, webhooks  # noqa: E402
from portability.db.migrate import upgrade  # noqa: E402
from portability.destinations.memory import MemoryDestination  # noqa: E402
from portability.devtools.pg_schema import scratch_schema  # noqa: E402
from portability.events import record_event  # noqa: E402
from portability.events.dispatch import dispatch_events  # noqa: E402
from portability.platform.seed import seed  # noqa: E402
from portability.runs import create_run  # noqa: E402
from portability.runtime import Runtime  # noqa: E402
from portability.settings import Settings  # noqa: E402
from portability.signing import new_signing_key_text  # noqa: E402

PG = os.environ.get("PORTABILITY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("PORTABILITY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")


class Arrivals:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.lock = threading.Lock()

    def add(self, body: bytes) -> None:
        stamp = orjson.loads(body)["timestamp"]
        occurred = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        delay = time.time() - occurred.timestamp()
        with self.lock:
            self.delays.append(delay)

    def take(self) -> list[float]:
        with self.lock:
            taken, self.delays = self.delays, []
        return taken

    def count(self) -> int:
        with self.lock:
            return len(self.delays)


def start_receiver(arrivals: Arrivals) -> str:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            arrivals.add(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hooks"


def dispatcher(settings: Settings, runtime: Runtime, stop: threading.Event) -> None:
    from workers.app import create_app
    from workers.events import publish_deliveries

    celery = create_app(settings)
    while not stop.wait(0.1):
        dispatch_events(settings, runtime.sessions, lambda ids: publish_deliveries(celery, ids))


def record(runtime: Runtime, app_id: int, count: int, *, per_commit: int = 100) -> None:
    for start in range(0, count, per_commit):
        with runtime.sessions.begin() as session:
            for i in range(start, min(count, start + per_commit)):
                record_event(session, app_id, "run.succeeded", {"run_id": i, "records": 10})


def wait_for(arrivals: Arrivals, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while arrivals.count() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {arrivals.count()} of {count} events arrived")
        time.sleep(0.02)


def percentiles(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
    }


def export_seconds(runtime: Runtime, auth_id: int, dest_id: int) -> float:
    from portability.export import execute_run

    with runtime.sessions.begin() as session:
        run_id = create_run(
            session,
            app_id=None,
            authorization_id=auth_id,
            destination_id=dest_id,
            categories="all",
        ).id
    started = time.perf_counter()
    outcome = execute_run(runtime, run_id)
    assert outcome.status == "succeeded", outcome
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--pool",
        default="prefork",
        help="prefork (one delivery at a time per process) or threads (--threads per process)",
    )
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--nice", type=int, default=0, help="run the events worker at this CPU niceness"
    )
    parser.add_argument("--paced", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--records", type=int, default=300_000)
    args = parser.parse_args()
    with scratch_schema(PG, "bench_events") as url:
        print(json.dumps(measure(args, url)))


def measure(args: argparse.Namespace, url: str) -> dict[str, Any]:
    data_dir = Path(f"/tmp/bench-events-{os.getpid()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env.update(
        PORTABILITY_DATA_DIR=str(data_dir),
        PORTABILITY_DATABASE_URL=url,
        PORTABILITY_BROKER_URL=REDIS,
        PORTABILITY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PORTABILITY_PSEUDONYM_KEY="bench-pseudonym-key-" + "k" * 32,
        PORTABILITY_MANIFEST_SIGNING_KEYS=new_signing_key_text(),
        PORTABILITY_ALLOW_HTTP_ENDPOINTS="true",
        PORTABILITY_ALLOW_PRIVATE_ENDPOINTS="true",
    )
    settings = Settings(
        data_dir=data_dir,
        database_url=SecretStr(url),
        broker_url=SecretStr(REDIS),
        encryption_key=SecretStr(env["PORTABILITY_ENCRYPTION_KEY"]),
        pseudonym_key=SecretStr(env["PORTABILITY_PSEUDONYM_KEY"]),
        manifest_signing_keys=SecretStr(env["PORTABILITY_MANIFEST_SIGNING_KEYS"]),
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    buckets: dict[int, MemoryDestination] = {}
    runtime = Runtime.from_settings(
        settings, open_destination=lambda row: buckets.setdefault(row.id, MemoryDestination())
    )
    upgrade(runtime.engine)
    user = seed(runtime.engine, users=1, records_per_user=args.records, seed=1).user_ids[0]
    arrivals = Arrivals()
    receiver_url = start_receiver(arrivals)
    with runtime.sessions.begin() as session:
        session.execute(text("UPDATE platform_users SET country = 'DE' WHERE id = :u"), {"u": user})
        app, _ = registry.create_app(
            session, name="Bench", contact_email="b@bench.test", use_case="benchmarks webhooks"
        )
        registry.set_app_status(session, app.id, "approved")
        auth = registry.grant(
            session,
            user_id=user,
            app_id=app.id,
            categories="all",
            access="ongoing",
            eligible_countries={"DE"},
        )
        dests = [
            registry.add_destination(
                session,
                runtime.box,
                app_id=app.id,
                bucket=f"bench-{i}",
                access_key_id="k",
                secret_access_key="s",
            ).id
            for i in range(2)
        ]
        webhooks.create_endpoint(
            session,
            runtime.box,
            app_id=app.id,
            url=receiver_url,
            event_types=["run.succeeded"],
            policy=settings.endpoint_policy,
        )
        app_id, auth_id = app.id, auth.id
    worker = subprocess.Popen(
        [
            *(["nice", "-n", str(args.nice)] if args.nice else []),
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "workers",
            "worker",
            "-Q",
            "portability.events",
            *(
                [f"--concurrency={args.processes}"]
                if args.pool == "prefork"
                else ["--pool=threads", f"--concurrency={args.threads}"]
            ),
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=bench-events-{os.getpid()}@%h",
        ],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher, args=(settings, runtime, stop), daemon=True)
    thread.start()
    try:
        record(runtime, app_id, 20)  # warm-up: the workers are up once these arrive
        wait_for(arrivals, 20, timeout=120)
        arrivals.take()

        started = time.perf_counter()
        record(runtime, app_id, args.events)
        wait_for(arrivals, args.events)
        burst_seconds = time.perf_counter() - started
        burst = percentiles(arrivals.take())
        print(f"burst: {args.events / burst_seconds:.0f} events/s, {burst}", file=sys.stderr)

        for _ in range(args.paced):
            record(runtime, app_id, 1)
            time.sleep(1 / args.rate)
        wait_for(arrivals, args.paced)
        paced = percentiles(arrivals.take())

        alone = export_seconds(runtime, auth_id, dests[0])
        record(runtime, app_id, args.events)  # a backlog: the workers deliver flat out
        wait_for(arrivals, 200)
        during = export_seconds(runtime, auth_id, dests[1])
        delivered_meanwhile = arrivals.count()
        wait_for(arrivals, args.events)
    finally:
        stop.set()
        os.killpg(worker.pid, 15)
        worker.wait(30)
        runtime.close()
    rate = args.events / burst_seconds
    processes = args.processes if args.pool == "prefork" else 1
    return {
        "events": args.events,
        "pool": args.pool if args.pool == "prefork" else f"threads x{args.threads}",
        "processes": processes,
        "nice": args.nice,
        "burst_seconds": round(burst_seconds, 2),
        "events_per_s": round(rate, 1),
        "events_per_s_per_process": round(rate / processes, 1),
        "burst_delay_p50_ms": burst["p50_ms"],
        "burst_delay_p99_ms": burst["p99_ms"],
        "paced_rate": args.rate,
        "paced_delay_p50_ms": paced["p50_ms"],
        "paced_delay_p99_ms": paced["p99_ms"],
        "export_records": args.records,
        "export_alone_s": round(alone, 2),
        "export_during_burst_s": round(during, 2),
        "export_slowdown": round(during / alone, 2),
        "events_delivered_by_the_end_of_that_export": delivered_meanwhile,
    }


if __name__ == "__main__":
    main()
