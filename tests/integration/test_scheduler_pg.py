"""The scheduler on PostgreSQL (index, row locks, array writes) and publishing to Redis."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from portability.db.engine import make_engine, transaction
from portability.db.models import Access, Authorization, Run, RunStatus, Schedule
from portability.runs import claim_run
from schedules import reconcile_runs, run_tick
from schedules.claim import claim_statement
from tests.fixtures.workers import wait_until
from tests.unit.test_scheduler_semantics import HOUR, T0, World, build_world
from workers._publish import EXPORT_TASK, _can_push_directly, publish_runs

pytestmark = pytest.mark.services


@pytest.fixture
def world(pg_url: str) -> Iterator[World]:
    built = build_world(pg_url)
    yield built
    built.runtime.close()


def test_claim_query_walks_the_partial_due_index(world: World) -> None:
    statement = claim_statement(T0, 1000).compile(
        world.runtime.engine, compile_kwargs={"literal_binds": True}
    )
    assert "FOR UPDATE SKIP LOCKED" in str(statement)
    with world.runtime.engine.connect() as conn:
        for method in ("seqscan", "bitmapscan"):  # a tiny table favours other plans
            conn.execute(text(f"SET LOCAL enable_{method} = off"))
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}"))
    assert "Index Scan using ix_schedules_due on schedules" in plan, plan


def test_schedule_locked_by_another_scheduler_is_skipped_not_waited_for(world: World) -> None:
    ids = [world.schedule("@hourly") for _ in range(3)]
    other = make_engine(world.runtime.settings.resolved_database_url)
    with other.connect() as holder:
        holder.execute(select(Schedule.id).where(Schedule.id == ids[0]).with_for_update())
        results = []
        ticking = threading.Thread(target=lambda: results.append(world.tick(T0 + HOUR)))
        ticking.start()
        ticking.join(20)
        assert not ticking.is_alive(), "the tick waited for a row another scheduler holds"
        holder.rollback()
    other.dispose()
    assert results[0].created == 2
    assert [len(world.runs(s)) for s in ids] == [0, 1, 1]
    assert world.tick(T0 + HOUR).created == 1  # released: claimed by the next tick
    assert [len(world.runs(s)) for s in ids] == [1, 1, 1]


def test_every_decision_kind_in_one_tick(world: World) -> None:
    normal = world.schedule("@hourly")
    busy = world.schedule("@hourly")
    once = world.schedule(None)
    expiring = world.schedule(
        "@hourly", grant_id=world.grant(Access.ONGOING, expires_at=T0 + timedelta(minutes=90))
    )
    revoked_grant = world.grant(Access.ONGOING)
    revoked = world.schedule("@hourly", grant_id=revoked_grant)
    world.set(Authorization, revoked_grant, revoked_at=T0)
    world.tick(T0 + timedelta(seconds=1))  # only `once` is due yet
    with transaction(world.runtime.sessions) as session:  # `busy` has a run in progress
        session.add(
            previous := Run(
                app_id=world.app_id,
                schedule_id=busy,
                authorization_id=world.grant_id,
                destination_id=world.destination_id,
                categories="posts",
                status=RunStatus.RUNNING,
            )
        )
        session.flush()
        session.execute(update(Schedule).where(Schedule.id == busy).values(last_run_id=previous.id))

    result = world.tick(T0 + HOUR)

    assert (result.claimed, result.created, result.skipped, result.disabled) == (4, 2, 1, 2)
    rows = {s: world.row(s) for s in (normal, busy, once, expiring, revoked)}
    assert {
        s: (r.next_run_at, r.skipped_runs, r.disabled_reason is not None) for s, r in rows.items()
    } == {
        normal: (T0 + 2 * HOUR, 0, False),
        busy: (T0 + 2 * HOUR, 1, False),
        once: (None, 0, False),
        expiring: (None, 0, True),
        revoked: (None, 0, True),
    }
    assert rows[busy].last_skip_reason == f"run {previous.id} was still running at " + (
        "2024-05-06T13:00:00Z"
    )
    assert [len(world.runs(s)) for s in (normal, busy, once, expiring, revoked)] == [1, 1, 1, 1, 0]
    assert rows[normal].last_run_id == world.runs(normal)[0].id


def test_crash_between_commit_and_enqueue_is_recovered_and_duplicates_dropped(
    world: World,
) -> None:
    schedule_id = world.schedule("@hourly")

    def crash(_run_ids: list[int]) -> None:
        raise ConnectionError("the scheduler died before publishing")

    with pytest.raises(ConnectionError):
        run_tick(world.runtime, crash, now=T0 + HOUR)
    (run,) = world.runs(schedule_id)
    assert (run.status, run.enqueued_at) == ("queued", None)

    later = T0 + HOUR + timedelta(seconds=world.runtime.settings.reconcile_after_seconds + 1)
    assert reconcile_runs(world.runtime, world.enqueue, now=later) == 1
    world.enqueue([run.id])  # and a redelivered copy of the same message
    assert world.sent == [[run.id], [run.id]]

    claims = []
    for _message in world.sent:
        with transaction(world.runtime.sessions) as session:
            claims.append(claim_run(session, run.id, lease_seconds=60, now=later))
    assert claims == [True, False]


def test_published_runs_are_executed_by_a_real_celery_worker(world: World, redis_url: str) -> None:
    from celery.contrib.testing.worker import start_worker

    from portability.settings import Settings
    from workers.app import create_app

    app = create_app(Settings(broker_url=redis_url, data_dir=world.runtime.settings.data_dir))
    app.conf.task_default_queue = f"scheduler-test-{uuid.uuid4().hex[:8]}"
    received: list[int] = []

    # Its own task name: workers.app's shared export task joins every app in this process.
    @app.task(name="tests.scheduler.record_run")  # type: ignore[untyped-decorator]
    def record_run(run_id: int) -> None:
        received.append(run_id)

    def enqueue(run_ids: list[int]) -> None:
        publish_runs(app, run_ids, task_name=record_run.name)

    with app.connection_or_acquire() as connection:
        assert _can_push_directly(app, connection)  # the LPUSH path, not send_task
    ids = [world.schedule("@hourly") for _ in range(25)]
    result = run_tick(world.runtime, enqueue, now=T0 + HOUR)
    assert result.created == len(ids)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        wait_until(
            lambda: len(received) >= len(ids), timeout=30, what="the worker to run every message"
        )
    assert sorted(received) == sorted(result.run_ids)


def test_direct_redis_message_is_the_message_celery_itself_sends(redis_url: str) -> None:
    import redis

    from portability.settings import Settings
    from workers.app import create_app

    app = create_app(Settings(broker_url=redis_url))
    queue = app.conf.task_default_queue = f"scheduler-test-{uuid.uuid4().hex[:8]}"
    app.send_task(EXPORT_TASK, args=[7])
    publish_runs(app, [7])

    client = redis.Redis.from_url(redis_url)
    celerys, ours = (json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1)))
    client.delete(queue)
    assert _without_ids(ours) == _without_ids(celerys)
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"] != celerys["headers"]["id"]


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    """A message with its per-message identifiers blanked and its body decoded."""
    return {
        **message,
        "body": json.loads(base64.b64decode(message["body"])),
        "headers": {**message["headers"], "id": "-", "root_id": "-"},
        "properties": {**message["properties"], "correlation_id": "-", "delivery_tag": "-"},
    }
