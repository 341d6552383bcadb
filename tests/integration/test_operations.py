"""Operations on real worker processes: /metrics after a real run, JSON log lines with the
run's ids and nothing secret, the heartbeat, and SIGTERM in the middle of a run."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from portability.db.engine import make_engine
from portability.destinations.s3 import S3Destination
from portability.settings import Settings
from tests.fixtures.transfers import (
    assert_consumer_exact,
    assert_exactly_once,
    current_lines,
)
from tests.fixtures.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: In this suite's port range (19600-19699).
WORKER_METRICS_PORT = 19611


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
        data_dir=Path(env["PORTABILITY_DATA_DIR"]),
        broker_url=env["PORTABILITY_BROKER_URL"],
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )


def _status(engine, run_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}).scalar_one()
        )


def _enqueue_routed(env: dict[str, str], engine, run_id: int) -> None:
    """As the scheduler sends it: on the app's export queue."""
    from workers._publish import publish_routed
    from workers.app import create_app

    publish_routed(create_app(_settings(env)), engine, [run_id], queues=4)


@pytest.fixture
def observed(pg_url, worker_env, tmp_path, make_transfer, s3_endpoint, make_bucket):
    """A transfer to a real SeaweedFS bucket, and a worker env serving /metrics."""
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = dict(
        worker_env,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        PORTABILITY_WORKER_METRICS_PORT=str(WORKER_METRICS_PORT),
        PORTABILITY_LOG_FORMAT="json",
        PORTABILITY_HEARTBEAT_SECONDS="0.5",
    )
    bucket = make_bucket(s3_endpoint)
    engine = make_engine(pg_url)
    transfer = make_transfer(
        engine,
        S3Destination(s3_endpoint.config(bucket)),
        records=150,
        categories="posts,direct_messages",
        settings=_settings(env),
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    yield env, engine, transfer, s3_endpoint.secret_access_key
    engine.dispose()


def _run_on_a_worker(observed, start_worker):
    env, engine, transfer, _ = observed
    worker = start_worker(env=env)
    run_id = transfer.new_run()
    _enqueue_routed(env, engine, run_id)
    try:
        wait_until(lambda: _status(engine, run_id) == "succeeded", timeout=60, what="the run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{worker.log()[-4000:]}") from None
    return worker, run_id


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_a_worker_serves_the_series_of_a_run_its_pool_process_executed(observed, start_worker):
    _, engine, _transfer, _ = observed
    _worker, run_id = _run_on_a_worker(observed, start_worker)
    with engine.connect() as conn:
        posts = conn.execute(
            text("SELECT records FROM run_categories WHERE run_id = :r AND category = 'posts'"),
            {"r": run_id},
        ).scalar_one()

    def exposed() -> str | None:
        body = _scrape(WORKER_METRICS_PORT)
        return (
            body if 'portability_runs_total{reason="none",status="succeeded"} 1.0' in body else None
        )

    body = str(wait_until(exposed, timeout=20, what="the run's series on the worker's /metrics"))
    assert f'portability_delivered_records_total{{category="posts"}} {float(posts)}' in body
    assert 'portability_run_duration_seconds_count{status="succeeded"} 1.0' in body


def test_a_runs_log_lines_are_json_with_its_ids_and_no_secret_or_content(observed, start_worker):
    _, engine, transfer, s3_secret = observed
    worker, run_id = _run_on_a_worker(observed, start_worker)
    wait_until(lambda: f"run {run_id} succeeded" in worker.log(), timeout=10, what="the line")
    lines = [orjson.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("run_id") == run_id]

    success = [line for line in ours if line["message"].startswith(f"run {run_id} succeeded")]
    assert len(success) == 1, ours
    assert "records" in success[0]["message"]
    assert {line.get("app_id") for line in ours} == {transfer.app_id}
    assert not [line for line in lines if "succeeded in" in line.get("message", "")]
    log = worker.log()
    assert len(s3_secret) >= 8 and s3_secret not in log  # the worker opened and used it
    bodies = [
        orjson.loads(line)["data"]["body"]
        for line in current_lines(engine, transfer.user_id, "direct_messages")
    ]
    leaked = [body for body in bodies if len(body) >= 12 and body in log]
    assert bodies and leaked == []


def test_a_worker_touches_its_heartbeat_and_the_health_command_says_alive(observed, start_worker):
    env = observed[0]
    start_worker(env=env)
    health = Path(env["PORTABILITY_DATA_DIR"]) / "health" / "worker.heartbeat"
    first = float(wait_until(lambda: health.exists() and health.stat().st_mtime, what="a beat"))
    wait_until(lambda: health.stat().st_mtime > first, timeout=10, what="a second beat")
    portability = str(Path(sys.executable).parent / "portability")
    result = subprocess.run(
        [portability, "health", "worker", "--max-age", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout.split(":")[0]) == (0, "worker alive")


def test_sigterm_mid_run_leaves_the_run_to_a_new_worker_that_completes_it_exactly_once(
    pg_url, worker_env, start_worker, make_transfer, s3_endpoint, make_bucket
):
    env = dict(
        worker_env, PORTABILITY_EXPORT_BATCH_SIZE="100", PORTABILITY_EXPORT_PART_MAX_RECORDS="200"
    )
    bucket = make_bucket(s3_endpoint)
    destination = S3Destination(s3_endpoint.config(bucket))
    engine = make_engine(pg_url)
    transfer = make_transfer(
        engine,
        destination,
        records=30_000,
        categories="activity",
        settings=Settings(
            encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
            pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
            data_dir=Path(env["PORTABILITY_DATA_DIR"]),
            allow_http_endpoints=True,
            allow_private_endpoints=True,
        ),
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    run_id = transfer.new_run()
    first = start_worker(env=env)
    _enqueue_routed(env, engine, run_id)
    wait_until(
        lambda: any("/parts/" in o.key for o in destination.list_objects("")),
        timeout=60,
        what="the first part to be written",
    )
    # What `docker stop -t 2` does: SIGTERM to the main process, SIGKILL after the grace.
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)
    try:
        first.process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        first.kill()
    start_worker(env=env)
    wait_until(
        lambda: _status(engine, run_id) in {"succeeded", "failed", "cancelled"},
        timeout=120,
        what="the run to finish on the new worker",
    )

    assert _status(engine, run_id) == "succeeded"
    assert_exactly_once(transfer, ["activity"])
    assert_consumer_exact(transfer, ["activity"])
    engine.dispose()


SCHEDULER_METRICS_PORT = 19612


def test_the_scheduler_serves_tick_backlog_queue_and_lag_series_after_a_real_tick(
    pg_url, worker_env, make_transfer
):
    from datetime import timedelta

    from portability.db.base import utcnow
    from portability.destinations.memory import MemoryDestination
    from portability.registry import create_schedule
    from workers._publish import export_queue

    engine = make_engine(pg_url)
    transfer = make_transfer(engine, MemoryDestination(), records=20, categories="posts")
    with transfer.runtime.sessions.begin() as session:
        schedule = create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts",
            cron="@daily",
            timezone="UTC",
        )
        schedule.next_run_at = utcnow() - timedelta(seconds=1)
    env = dict(
        worker_env,
        PORTABILITY_SCHEDULER_METRICS_PORT=str(SCHEDULER_METRICS_PORT),
        PORTABILITY_SCHEDULER_MAX_JITTER_SECONDS="0",
        PORTABILITY_LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "portability"), "scheduler", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    queue = export_queue(transfer.app_id, 4)
    try:

        def scraped() -> str | None:
            try:
                body = _scrape(SCHEDULER_METRICS_PORT)
            except OSError:
                return None
            created = 'portability_scheduler_schedules_total{outcome="created"} 1.0'
            return body if created in body and f'queue="{queue}"' in body else None

        body = str(wait_until(scraped, timeout=30, what="the tick's series on /metrics"))
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("portability_") and " " in line
    }
    assert samples[f'portability_queue_depth{{queue="{queue}"}}'] == 1.0
    assert samples["portability_scheduler_tick_seconds_count"] >= 1
    assert samples["portability_scheduler_due_backlog"] == 0.0
    assert samples["portability_delivery_lag_seconds"] == 0.0  # nothing delivered yet
    heartbeat = Path(env["PORTABILITY_DATA_DIR"]) / "health" / "scheduler.heartbeat"
    assert heartbeat.exists()
    engine.dispose()
