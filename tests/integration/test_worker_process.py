"""Real Celery worker processes: redelivery after SIGKILL, and beat + worker carrying a
recurring schedule, on real brokers and a real S3 server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from portability.db.base import utcnow
from portability.db.engine import make_engine
from portability.db.migrate import upgrade
from portability.db.models import RunStatus
from portability.destinations.s3 import S3Destination
from portability.platform.mutate import mutate
from portability.registry import create_schedule
from portability.settings import Settings
from tests.fixtures.transfers import assert_consumer_exact, assert_exactly_once
from tests.fixtures.workers import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _destination(s3_endpoint, bucket: str) -> S3Destination:
    return S3Destination(s3_endpoint.config(bucket))


def _status(engine, run_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT status FROM runs WHERE id = :i"), {"i": run_id}).scalar_one()
        )


def _enqueue(env: dict[str, str], run_id: int) -> None:
    from workers.app import EXPORT_TASK, create_app

    settings = Settings(
        data_dir=Path(env["PORTABILITY_DATA_DIR"]), broker_url=env.get("PORTABILITY_BROKER_URL")
    )
    create_app(settings).send_task(EXPORT_TASK, args=[run_id])


def test_a_worker_killed_mid_run_is_redelivered_and_completes_exactly_once(
    pg_url, worker_env, start_worker, make_transfer, s3_endpoint, make_bucket
):
    env = dict(
        worker_env, PORTABILITY_EXPORT_BATCH_SIZE="100", PORTABILITY_EXPORT_PART_MAX_RECORDS="200"
    )
    settings = Settings(
        encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
        manifest_signing_keys=env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        data_dir=Path(env["PORTABILITY_DATA_DIR"]),
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    bucket = make_bucket(s3_endpoint)
    destination = _destination(s3_endpoint, bucket)
    engine = make_engine(pg_url)
    transfer = make_transfer(
        engine,
        destination,
        records=30_000,
        categories="activity",
        settings=settings,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    run_id = transfer.new_run()
    first = start_worker(env=env)
    _enqueue(env, run_id)

    wait_until(
        lambda: any("/parts/" in o.key for o in destination.list_objects("")),
        timeout=60,
        what="the first part to be written",
    )
    first.kill()
    assert _status(engine, run_id) == RunStatus.RUNNING
    start_worker(env=env)
    wait_until(
        lambda: _status(engine, run_id) in {"succeeded", "failed", "cancelled"},
        timeout=120,
        what="the redelivered run to finish",
    )

    assert _status(engine, run_id) == RunStatus.SUCCEEDED
    assert_exactly_once(transfer, ["activity"])
    assert_consumer_exact(transfer, ["activity"])
    with engine.connect() as conn:
        attempts = conn.execute(
            text("SELECT attempts FROM runs WHERE id = :i"), {"i": run_id}
        ).scalar_one()
    assert attempts >= 2
    engine.dispose()


def test_beat_and_a_worker_on_the_embedded_default_carry_a_schedule_through_two_runs(
    tmp_path, start_worker, start_beat, make_transfer, s3_endpoint, make_bucket
):
    from cryptography.fernet import Fernet

    data_dir = tmp_path / "embedded"
    env = {
        "PATH": __import__("os").environ["PATH"],
        "PORTABILITY_DATA_DIR": str(data_dir),
        "PORTABILITY_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PORTABILITY_SCHEDULER_TICK_SECONDS": "0.5",
        "PORTABILITY_SCHEDULER_MAX_JITTER_SECONDS": "0",
        # The test S3 server listens on http://127.0.0.1.
        "PORTABILITY_ALLOW_HTTP_ENDPOINTS": "true",
        "PORTABILITY_ALLOW_PRIVATE_ENDPOINTS": "true",
    }
    settings = Settings(
        data_dir=data_dir,
        encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
        allow_http_endpoints=True,
        allow_private_endpoints=True,
    )
    engine = make_engine(settings)  # the embedded default: SQLite under the data folder
    upgrade(engine)
    bucket = make_bucket(s3_endpoint)
    destination = _destination(s3_endpoint, bucket)
    transfer = make_transfer(
        engine,
        destination,
        records=300,
        categories="posts,profile",
        settings=settings,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )
    with transfer.runtime.sessions.begin() as session:
        schedule_id = create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories="posts,profile",
            cron="@daily",
            timezone="Europe/Berlin",
        ).id

    def make_due() -> None:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE schedules SET next_run_at = :t WHERE id = :i"),
                {"t": utcnow() - timedelta(seconds=1), "i": schedule_id},
            )

    def runs() -> list[tuple[int, str]]:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text("SELECT id, status FROM runs WHERE schedule_id = :i ORDER BY id"),
                    {"i": schedule_id},
                )
            ]

    start_worker(env=env)
    start_beat(env=env)
    make_due()
    wait_until(
        lambda: [s for _, s in runs()] == ["succeeded"], timeout=90, what="the first scheduled run"
    )
    mutate(engine, user_id=transfer.user_id, updates=3, deletes=1, seed=4, categories=["posts"])
    make_due()
    wait_until(
        lambda: [s for _, s in runs()] == ["succeeded", "succeeded"],
        timeout=90,
        what="the second scheduled run",
    )

    second_run = runs()[1][0]
    with engine.connect() as conn:
        next_run = conn.execute(
            text("SELECT next_run_at FROM schedules WHERE id = :i"), {"i": schedule_id}
        ).scalar_one()
        second_records = conn.execute(
            text("SELECT records FROM runs WHERE id = :i"), {"i": second_run}
        ).scalar_one()
    assert next_run is not None
    assert second_records == 4
    assert (data_dir / "health" / "scheduler.heartbeat").exists()  # beat's liveness file
    engine.dispose()


def _run_row(engine, run_id: int) -> tuple[str, int, str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, attempts, failure_reason, last_error FROM runs WHERE id = :i"),
            {"i": run_id},
        ).one()
    return row[0], row[1], row[2], row[3]


def _positions(engine, authorization_id: int) -> dict[str, tuple[str | None, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT category, position, sequence FROM streams WHERE authorization_id = :a"),
            {"a": authorization_id},
        )
        return {category: (position, sequence) for category, position, sequence in rows}


@pytest.fixture
def slow_env(worker_env):
    """Small batches and parts (a run lasts long enough to be killed in the middle), and no
    help from the reconciler or the broker's visibility timeout: a recovery must come from
    the worker itself."""
    return dict(
        worker_env,
        PORTABILITY_EXPORT_BATCH_SIZE="50",
        PORTABILITY_EXPORT_PART_MAX_RECORDS="100",
        PORTABILITY_VISIBILITY_TIMEOUT="3600",
        PORTABILITY_RECONCILE_AFTER_SECONDS="3600",
    )


def _activity_transfer(make_transfer, engine, env, s3_endpoint, make_bucket, records: int):
    settings = Settings(
        encryption_key=env["PORTABILITY_ENCRYPTION_KEY"],
        pseudonym_key=env["PORTABILITY_PSEUDONYM_KEY"],
        manifest_signing_keys=env["PORTABILITY_MANIFEST_SIGNING_KEYS"],
        data_dir=Path(env["PORTABILITY_DATA_DIR"]),
        allow_http_endpoints=True,  # the test S3 server listens on http://127.0.0.1
        allow_private_endpoints=True,
    )
    bucket = make_bucket(s3_endpoint)
    return make_transfer(
        engine,
        _destination(s3_endpoint, bucket),
        records=records,
        categories="activity",
        settings=settings,
        bucket=bucket,
        endpoint_url=s3_endpoint.endpoint_url,
        access_key_id=s3_endpoint.access_key_id,
        secret_access_key=s3_endpoint.secret_access_key,
    )


def test_a_pool_process_killed_mid_run_is_taken_over_without_the_reconciler(
    pg_url, slow_env, start_worker, make_transfer, s3_endpoint, make_bucket
):
    engine = make_engine(pg_url)
    # Long enough (400 parts) that a loaded machine still sees the run in the middle.
    transfer = _activity_transfer(make_transfer, engine, slow_env, s3_endpoint, make_bucket, 40_000)
    run_id = transfer.new_run()
    worker = start_worker(env=slow_env)
    _enqueue(slow_env, run_id)
    wait_until(
        lambda: any("/parts/" in o.key for o in transfer.destination.list_objects("")),
        timeout=60,
        what="the first part to be written",
    )

    worker.kill_children()
    assert _status(engine, run_id) == "running", "the run ended before the kill: lengthen it"
    wait_until(
        lambda: _status(engine, run_id) in {"succeeded", "failed", "cancelled"},
        timeout=60,  # the 3 s lease plus a redelivery: no 3600 s timeout or reconciler
        what="the run to be taken over and finished",
    )

    status, attempts, _reason, _error = _run_row(engine, run_id)
    assert (status, attempts) == ("succeeded", 2)
    assert_exactly_once(transfer, ["activity"])
    assert_consumer_exact(transfer, ["activity"])
    engine.dispose()


def test_a_run_whose_worker_dies_every_time_fails_after_its_attempts_and_keeps_its_position(
    pg_url, slow_env, start_worker, make_transfer, s3_endpoint, make_bucket
):
    from portability.retries import rerun
    from portability.streams import request_replay

    engine = make_engine(pg_url)
    transfer = _activity_transfer(make_transfer, engine, slow_env, s3_endpoint, make_bucket, 8000)
    worker = start_worker(env=slow_env)
    first = transfer.new_run()
    _enqueue(slow_env, first)
    wait_until(lambda: _status(engine, first) == "succeeded", timeout=90, what="the first run")
    with transfer.runtime.sessions.begin() as session:  # a long delivery: a full replay
        request_replay(session, app_id=None, authorization_id=transfer.authorization_id)
    before = _positions(engine, transfer.authorization_id)

    doomed = transfer.new_run(max_attempts=2)
    _enqueue(slow_env, doomed)
    for attempt in (1, 2):
        wait_until(
            lambda n=attempt: _run_row(engine, doomed)[:2] == ("running", n),
            timeout=60,
            what=f"attempt {attempt} to start",
        )
        worker.kill_children()
    wait_until(lambda: _status(engine, doomed) == "failed", timeout=60, what="the run to fail")

    status, attempts, reason, error = _run_row(engine, doomed)
    assert (status, attempts, reason) == ("failed", 3, "internal")  # the third claim gives up
    assert "worker died or timed out 2 times" in (error or "")
    assert _positions(engine, transfer.authorization_id) == before
    with transfer.runtime.sessions.begin() as session:
        again = rerun(session, doomed, eligible_countries={"DE"}).id
    _enqueue(slow_env, again)
    wait_until(lambda: _status(engine, again) == "succeeded", timeout=90, what="the re-run")
    assert_exactly_once(transfer, ["activity"])
    assert_consumer_exact(transfer, ["activity"])
    engine.dispose()
