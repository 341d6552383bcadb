"""Benchmark the developer API: one uvicorn process on PostgreSQL, a load generator beside it.

Registers an approved app with a grant, a destination and ``--runs`` runs (four categories
each) in a throwaway schema, starts ``portability api`` (one process, access log off) on
``--port``, then measures for three requests, each authenticated with the app's key:

- ``GET /v1/runs/{id}`` (one run with its per-category rows),
- ``GET /v1/runs?limit=50``,
- ``POST /v1/transfers`` (a queued run, committed, then published to Redis db 14);

first the most it serves (closed loop: ``wrk`` when installed, else a Python client, with
``--connections`` connections for ``--seconds``), then at half that rate (open loop: requests
sent on a fixed schedule and timed from when they were due, so a stall is not hidden). Prints
req/s and p50/p99 latency; the last line is one JSON object.

    .venv/bin/python bench/api.py [--runs 1000] [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import redis
from cryptography.fernet import Fernet
from sqlalchemy import text

from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.migrate import upgrade
from portability.devtools.sample import register_sample_transfer
from portability.keys import issue_key
from portability.runs import create_run
from tests.fixtures.db import create_pg_schema, drop_pg_schema, pg_schema_url
from tests.fixtures.workers import wait_until

REDIS_URL = "redis://127.0.0.1:6379/14"
CATEGORIES = ["activity", "direct_messages", "posts", "profile"]


def register(url: str, runs: int) -> tuple[str, int, int, int]:
    """An approved app with a grant, a destination and ``runs`` runs; returns the key and ids."""
    engine = make_engine(url)
    upgrade(engine)
    box = CredentialBox(Fernet.generate_key())
    with make_session_factory(engine).begin() as session:
        session.execute(
            text("INSERT INTO platform_users (id, country, created_at) VALUES ('u1', 'DE', now())")
        )
        sample = register_sample_transfer(
            session,
            box,
            user_id="u1",
            categories="all",
            eligible_countries={"DE"},
            bucket="bench-bucket",
            access_key_id="k",
            secret_access_key="s",
        )
        _row, api_key = issue_key(session, sample.app_id)
        run_ids = [
            create_run(
                session,
                app_id=None,
                authorization_id=sample.authorization_id,
                destination_id=sample.destination_id,
                categories="all",
            ).id
            for _ in range(runs)
        ]
        session.execute(
            text(
                "INSERT INTO run_categories (run_id, run_queued_at, category, status, records,"
                " bytes, parts, sequence, manifest_key) SELECT id, queued_at, :c, 'done', 1000,"
                " 250000, 1, 1, :k FROM runs WHERE id = :r"
            ),
            [
                {"r": r, "c": c, "k": f"exports/u1/{c}/manifest-{r:08d}.json"}
                for r in run_ids
                for c in CATEGORIES
            ],
        )
    engine.dispose()
    return api_key, sample.authorization_id, sample.destination_id, run_ids[len(run_ids) // 2]


def start_api(url: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTABILITY_")}
    env.update(
        PORTABILITY_DATABASE_URL=url,
        PORTABILITY_BROKER_URL=REDIS_URL,
        PORTABILITY_DATA_DIR=data_dir,
        PORTABILITY_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PORTABILITY_API_RATE_LIMIT="100000000",
    )
    cli = str(Path(sys.executable).parent / "portability")
    process = subprocess.Popen(
        [cli, "api", "--port", str(port), "--no-access-log", "--no-migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import urllib.request

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    wait_until(answers, timeout=30, what="the API to answer")
    return process


# -- load: wrk (closed loop) and a small asyncio HTTP/1.1 client (closed or open loop) --------


class Request:
    def __init__(self, method: str, path: str, key: str, body: bytes = b"") -> None:
        self.method, self.path, self.body, self.key = method, path, body, key
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}"]
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length: (\d+)", head)
    if match:
        await reader.readexactly(int(match.group(1)))
    return status


async def _closed(port: int, request: Request, connections: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            if await _exchange(reader, writer, request.raw) >= 300:
                errors += 1
            latencies.append(time.perf_counter() - started)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return _figures(latencies, time.perf_counter() - started, errors)


async def _open(port: int, request: Request, rate: float, seconds: float, connections: int) -> dict:
    """Requests due every 1/rate s, spread over ``connections``; latency counted from due."""
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def one(index: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(index, total, connections):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if await _exchange(reader, writer, request.raw) >= 300:
                errors += 1
            latencies.append(time.perf_counter() - due)
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return _figures(latencies, time.perf_counter() - start, errors)


def _figures(latencies: list[float], elapsed: float, errors: int) -> dict:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "req_per_s": round(len(ordered) / elapsed, 1),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        "errors": errors,
    }


def _wrk(port: int, request: Request, connections: int, seconds: float) -> dict | None:
    binary = shutil.which("wrk")
    if binary is None:
        return None
    body = json.dumps(request.body.decode()) if request.body else "nil"
    script = (
        f'wrk.method = "{request.method}"\n'
        f'wrk.headers["Authorization"] = "Bearer {request.key}"\n'
        + (
            f'wrk.headers["Content-Type"] = "application/json"\nwrk.body = {body}\n'
            if request.body
            else ""
        )
        + "done = function(summary, latency, requests)\n"
        '  io.write(string.format(\'JSON {"requests": %d, "seconds": %f, "p50": %f, '
        '"p99": %f, "errors": %d}\\n\', summary.requests, summary.duration / 1e6, '
        "latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, "
        "summary.errors.status + summary.errors.connect + summary.errors.read + "
        "summary.errors.write + summary.errors.timeout))\nend\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{int(seconds)}s",
            "-s",
            handle.name,
            f"http://127.0.0.1:{port}{request.path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(handle.name)
    data = json.loads(out.split("JSON ", 1)[1])
    return {
        "requests": data["requests"],
        "req_per_s": round(data["requests"] / data["seconds"], 1),
        "p50_ms": round(data["p50"], 2),
        "p99_ms": round(data["p99"], 2),
        "errors": data["errors"],
        "generator": "wrk",
    }


def measure(port: int, request: Request, args: argparse.Namespace, server: psutil.Process) -> dict:
    cpu_before = sum(server.cpu_times()[:2])
    peak = _wrk(port, request, args.connections, args.seconds) or asyncio.run(
        _closed(port, request, args.connections, args.seconds)
    )
    # What one request costs the API process, whatever else the machine runs: the bound.
    cpu = sum(server.cpu_times()[:2]) - cpu_before
    peak["server_cpu_ms_per_request"] = round(cpu / max(1, peak["requests"]) * 1000, 3)
    half = asyncio.run(_open(port, request, peak["req_per_s"] / 2, args.seconds, 16))
    return {"max": peak, "half_load": half}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=19410)
    args = parser.parse_args()

    schema = create_pg_schema("bench_api")
    url = pg_schema_url(schema)
    broker = redis.Redis.from_url(REDIS_URL)
    process = None
    try:
        key, grant_id, destination_id, run_id = register(url, args.runs)
        with tempfile.TemporaryDirectory() as data_dir:
            process = start_api(url, args.port, data_dir)
            transfer = json.dumps({"grant_id": grant_id, "destination_id": destination_id})
            requests = {
                "GET /v1/runs/{id}": Request("GET", f"/v1/runs/{run_id}", key),
                "GET /v1/runs?limit=50": Request("GET", "/v1/runs?limit=50", key),
                "POST /v1/transfers": Request("POST", "/v1/transfers", key, transfer.encode()),
            }
            figures = {}
            for name, request in requests.items():
                figures[name] = measure(args.port, request, args, psutil.Process(process.pid))
                peak, half = figures[name]["max"], figures[name]["half_load"]
                print(
                    f"{name:<24} max {peak['req_per_s']:>8,.0f} req/s  p50 {peak['p50_ms']:>6} ms"
                    f"  p99 {peak['p99_ms']:>6} ms  cpu {peak['server_cpu_ms_per_request']} ms/req"
                    f" | at {half['req_per_s']:,.0f} req/s: "
                    f"p50 {half['p50_ms']} ms  p99 {half['p99_ms']} ms  "
                    f"errors {peak['errors'] + half['errors']}"
                )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        broker.delete("portability")  # the published "run N is due" messages
        broker.close()
        drop_pg_schema(schema)
    print(json.dumps({"api": figures, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
