"""Several scheduler processes ticking at once on one database create each run once."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from portability.db.engine import make_engine, make_session_factory, transaction
from portability.db.models import Run, Schedule
from portability.settings import Settings
from schedules import DatabaseRuntime, run_tick
from tests.unit.test_scheduler_semantics import T0, World, build_world

BATCH = 50


def _scheduler_process(
    url: str, now: datetime, start: Any, results: Any
) -> None:  # runs in a spawned process
    engine = make_engine(url)
    settings = Settings(database_url=url, scheduler_batch_size=BATCH)
    runtime = DatabaseRuntime(settings, engine, make_session_factory(engine))
    with engine.connect():  # connect before the start line, so both tick at once
        pass
    sent: list[int] = []
    start.wait(timeout=60)
    result = run_tick(runtime, sent.extend, now=now)
    results.put((result.run_ids, sent))
    engine.dispose()


def _due_schedules(world: World, count: int) -> list[int]:
    rows = [
        {
            "app_id": world.app_id,
            "authorization_id": world.grant_id,
            "destination_id": world.destination_id,
            "categories": "posts",
            "cron": "@hourly",
            "timezone": "UTC",
            "next_run_at": T0 - timedelta(minutes=n % 60),
            "is_paused": False,
            "skipped_runs": 0,
            "created_at": T0 - timedelta(days=1),
        }
        for n in range(count)
    ]
    with transaction(world.runtime.sessions) as session:
        session.execute(insert(Schedule), rows)
        return list(session.scalars(select(Schedule.id)))


def _tick_in_two_processes(url: str, count: int) -> tuple[list[list[int]], list[int], int]:
    world = build_world(url)
    schedule_ids = _due_schedules(world, count)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(target=_scheduler_process, args=(url, T0, start, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    with world.runtime.sessions() as session:
        per_schedule = dict(
            session.execute(select(Run.schedule_id, func.count()).group_by(Run.schedule_id)).all()
        )
    world.runtime.close()
    created = [run_ids for run_ids, _sent in outcomes]
    sent = [run_id for _created, batch in outcomes for run_id in batch]
    assert per_schedule == dict.fromkeys(schedule_ids, 1)
    return created, sent, len(schedule_ids)


@pytest.mark.services
def test_two_schedulers_on_postgres_create_exactly_one_run_per_due_schedule(
    pg_url: str,
) -> None:
    created, sent, count = _tick_in_two_processes(pg_url, 3000)

    assert sorted(sent) == sorted(created[0] + created[1])
    assert len(set(sent)) == len(sent) == count
    # Both really ticked at the same time and split the work through SKIP LOCKED.
    assert [len(ids) > 0 for ids in created] == [True, True], [len(ids) for ids in created]


def test_two_schedulers_on_sqlite_create_exactly_one_run_per_due_schedule(
    sqlite_url: str,
) -> None:
    created, sent, count = _tick_in_two_processes(sqlite_url, 600)

    assert sorted(sent) == sorted(created[0] + created[1])
    assert len(set(sent)) == len(sent) == count
