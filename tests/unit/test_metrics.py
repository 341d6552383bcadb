"""portability.metrics: what a finished run counts, the delivery lag, the backlog, /metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import text

from portability.backlog import delivery_lag, due_backlog
from portability.db.base import utcnow
from portability.destinations.memory import MemoryDestination
from portability.metrics import Metrics, metrics_app, read_run_facts
from portability.registry import create_schedule
from tests.fixtures.transfers import run_to_end


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _finished_run(sqlite_engine, make_transfer):
    transfer = make_transfer(
        sqlite_engine, MemoryDestination(), records=60, categories="posts,profile"
    )
    run_id = transfer.new_run()
    assert run_to_end(transfer, run_id) == "succeeded"
    return transfer, run_id


def test_a_succeeded_run_counts_its_status_duration_records_and_first_replays(
    sqlite_engine, make_transfer
):
    _transfer, run_id = _finished_run(sqlite_engine, make_transfer)
    facts = read_run_facts(sqlite_engine, run_id)
    metrics = Metrics()
    metrics.observe_run(facts, "succeeded", retrying=False)

    assert facts is not None and facts.records > 0
    assert {
        "runs": _value(metrics, "portability_runs_total", status="succeeded", reason="none"),
        "durations": _value(metrics, "portability_run_duration_seconds_count", status="succeeded"),
        "records": sum(
            _value(metrics, "portability_delivered_records_total", category=c) or 0
            for c in ("posts", "profile")
        ),
        "first replays": _value(metrics, "portability_replays_total", reason="first_delivery"),
    } == {"runs": 1.0, "durations": 1.0, "records": float(facts.records), "first replays": 2.0}


def test_a_retry_counts_its_error_kind_and_not_a_run(sqlite_engine, make_transfer):
    _transfer, run_id = _finished_run(sqlite_engine, make_transfer)
    with sqlite_engine.begin() as conn:
        conn.execute(
            text("UPDATE runs SET failure_reason = 'destination_transient' WHERE id = :i"),
            {"i": run_id},
        )
    metrics = Metrics()
    metrics.observe_run(read_run_facts(sqlite_engine, run_id), "queued", retrying=True)

    assert _value(metrics, "portability_run_retries_total", kind="destination_transient") == 1.0
    assert _value(metrics, "portability_runs_total", status="succeeded", reason="none") is None


def _schedule(transfer, categories: str = "posts,profile") -> int:
    with transfer.runtime.sessions.begin() as session:
        return create_schedule(
            session,
            app_id=transfer.app_id,
            authorization_id=transfer.authorization_id,
            destination_id=transfer.destination_id,
            categories=categories,
            cron="@daily",
            timezone="UTC",
        ).id


def test_delivery_lag_is_the_age_of_the_oldest_ongoing_streams_last_delivery(
    sqlite_engine, make_transfer
):
    transfer, _run_id = _finished_run(sqlite_engine, make_transfer)
    _schedule(transfer)
    with sqlite_engine.connect() as conn:
        delivered = conn.execute(text("SELECT min(last_delivered_at) FROM streams")).scalar_one()
    later = utcnow() + timedelta(hours=3)

    lag = delivery_lag(sqlite_engine, now=later).seconds
    assert abs(lag - (later - _aware(delivered)).total_seconds()) < 5
    assert 3 * 3600 - 60 < lag < 3 * 3600 + 60


def test_the_lag_in_changes_counts_the_changes_the_oldest_stream_has_not_seen(
    sqlite_engine, make_transfer
):
    from portability.platform.mutate import mutate

    transfer = make_transfer(sqlite_engine, MemoryDestination(), records=40, categories="posts")
    assert run_to_end(transfer, transfer.new_run()) == "succeeded"
    _schedule(transfer, "posts")
    assert delivery_lag(sqlite_engine).changes == 0
    mutate(
        sqlite_engine, user_id=transfer.user_id, updates=3, deletes=1, seed=4, categories=["posts"]
    )

    assert delivery_lag(sqlite_engine).changes == 4


def test_a_run_that_found_nothing_new_keeps_the_lag_at_zero(sqlite_engine, make_transfer):
    transfer, _ = _finished_run(sqlite_engine, make_transfer)
    _schedule(transfer)
    later = utcnow() + timedelta(hours=3)
    with sqlite_engine.begin() as conn:  # an empty run started at `later`, as a tick would
        conn.execute(text("UPDATE runs SET started_at = :t"), {"t": later})

    assert delivery_lag(sqlite_engine, now=later).seconds == 0.0


def test_streams_of_a_revoked_grant_or_without_a_schedule_are_not_behind(
    sqlite_engine, make_transfer
):
    transfer, _ = _finished_run(sqlite_engine, make_transfer)
    later = utcnow() + timedelta(days=5)
    assert delivery_lag(sqlite_engine, now=later).seconds == 0.0  # no schedule
    _schedule(transfer)
    with sqlite_engine.begin() as conn:
        conn.execute(text("UPDATE authorizations SET revoked_at = :t"), {"t": utcnow()})
    assert delivery_lag(sqlite_engine, now=later).seconds == 0.0


def test_the_due_backlog_counts_unpaused_schedules_due_now(sqlite_engine, make_transfer):
    transfer, _ = _finished_run(sqlite_engine, make_transfer)
    first, second = _schedule(transfer), _schedule(transfer)
    with sqlite_engine.begin() as conn:
        conn.execute(text("UPDATE schedules SET next_run_at = :t"), {"t": utcnow()})
        conn.execute(text("UPDATE schedules SET is_paused = 1 WHERE id = :i"), {"i": second})
    assert due_backlog(sqlite_engine, now=utcnow() + timedelta(seconds=1)) == 1
    assert first != second


def _aware(value):
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_the_api_metrics_app_serves_the_registry_it_is_given():
    metrics = Metrics()
    metrics.resent.inc(3)
    body = _run_async(_get(metrics_app(metrics.registry), "/"))
    assert "portability_reconciler_resent_total 3.0" in body


def _run_async(coroutine):
    """Its own thread and loop: a session-wide browser fixture may hold this thread's loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _get(app, path: str) -> str:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [],
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
    }
    await app(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


def test_the_api_metrics_app_given_the_database_shows_backlog_and_lag(sqlite_engine, make_transfer):
    transfer, _ = _finished_run(sqlite_engine, make_transfer)
    _schedule(transfer)
    with sqlite_engine.begin() as conn:
        conn.execute(text("UPDATE schedules SET next_run_at = :t"), {"t": utcnow()})
    from prometheus_client import CollectorRegistry

    body = _run_async(_get(metrics_app(CollectorRegistry(), engine=sqlite_engine), "/"))
    assert "portability_scheduler_due_backlog 1.0" in body
    assert "portability_delivery_lag_seconds " in body
