"""What a developer can rely on from the scheduler, checked tick by tick on SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from portability import registry
from portability.crypto import CredentialBox
from portability.db.base import utcnow
from portability.db.engine import make_engine, make_session_factory, transaction
from portability.db.models import Access, App, AppStatus, Authorization, Run, RunStatus, Schedule
from portability.errors import FailureReason, ValidationError
from portability.runs import claim_run, finish_run, release_for_retry
from portability.settings import Settings
from schedules import DatabaseRuntime, TickResult, reconcile_runs, run_tick
from schedules.loop import SchedulerLoop

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday, noon
HOUR = timedelta(hours=1)


@dataclass
class World:
    """One approved app with an ongoing grant and a destination, and a recording enqueue."""

    runtime: DatabaseRuntime
    app_id: int
    grant_id: int
    destination_id: int
    sent: list[list[int]] = field(default_factory=list)

    def enqueue(self, run_ids: list[int]) -> None:
        self.sent.append(list(run_ids))

    def schedule(
        self,
        cron: str | None = "@hourly",
        *,
        timezone: str = "UTC",
        now: datetime = T0,
        grant_id: int | None = None,
        max_jitter_seconds: int = 0,
    ) -> int:
        with transaction(self.runtime.sessions) as session:
            return registry.create_schedule(
                session,
                app_id=self.app_id,
                authorization_id=grant_id or self.grant_id,
                destination_id=self.destination_id,
                categories="posts,profile",
                cron=cron,
                timezone=timezone,
                now=now,
                max_jitter_seconds=max_jitter_seconds,
            ).id

    def tick(self, now: datetime, **kwargs: object) -> TickResult:
        return run_tick(self.runtime, self.enqueue, now=now, **kwargs)  # type: ignore[arg-type]

    def row(self, schedule_id: int) -> Schedule:
        with self.runtime.sessions() as session:
            found = session.get(Schedule, schedule_id)
            assert found is not None
            return found

    def runs(self, schedule_id: int) -> list[Run]:
        with self.runtime.sessions() as session:
            return list(
                session.scalars(select(Run).where(Run.schedule_id == schedule_id).order_by(Run.id))
            )

    def set(self, model: type, row_id: object, **values: object) -> None:
        with transaction(self.runtime.sessions) as session:
            session.execute(update(model).where(model.id == row_id).values(**values))  # type: ignore[attr-defined]

    def finish(self, run_id: int, status: RunStatus = RunStatus.SUCCEEDED) -> None:
        self.set(Run, run_id, status=status.value)

    def grant(self, access: Access, expires_at: datetime | None = None) -> int:
        with transaction(self.runtime.sessions) as session:
            return registry.grant(
                session,
                user_id="user-1",
                app_id=self.app_id,
                categories="all",
                access=access,
                eligible_countries={"DE"},
                expires_at=expires_at,
                now=T0 - HOUR,
            ).id


def build_world(url: str, **settings: object) -> World:
    engine = make_engine(url)
    values: dict[str, object] = {
        "database_url": url,
        "scheduler_max_jitter_seconds": 0,
        "run_max_attempts": 7,
        **settings,
    }
    config = Settings(**values)  # type: ignore[arg-type]
    runtime = DatabaseRuntime(config, engine, make_session_factory(engine))
    box = CredentialBox(Fernet.generate_key())
    with transaction(runtime.sessions) as session:
        app, _ = registry.create_app(
            session, name="Backup app", contact_email="dev@example.com", use_case="backs up posts"
        )
        registry.set_app_status(session, app.id, AppStatus.APPROVED)
        registry.add_user(session, user_id="user-1", country="DE")
        grant = registry.grant(
            session,
            user_id="user-1",
            app_id=app.id,
            categories="all",
            access=Access.ONGOING,
            eligible_countries={"DE"},
            now=T0 - HOUR,
        )
        destination = registry.add_destination(
            session, box, app_id=app.id, bucket="backups", access_key_id="k", secret_access_key="s"
        )
        return World(runtime, app.id, grant.id, destination.id)


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    built = build_world(sqlite_url)
    yield built
    built.runtime.close()


# --- creating runs -----------------------------------------------------------------------


def test_due_schedule_gets_one_queued_run_like_create_run_would_write(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    now = T0 + HOUR + timedelta(seconds=3)

    result = world.tick(now)

    (run,) = world.runs(schedule_id)
    assert (result.created, result.run_ids, world.sent) == (1, [run.id], [[run.id]])
    assert {
        "status": run.status,
        "app_id": run.app_id,
        "authorization_id": run.authorization_id,
        "destination_id": run.destination_id,
        "categories": run.categories,
        "max_attempts": run.max_attempts,
        "attempts": run.attempts,
        "queued_at": run.queued_at,
        "records": run.records,
    } == {
        "status": "queued",
        "app_id": world.app_id,
        "authorization_id": world.grant_id,
        "destination_id": world.destination_id,
        "categories": "posts,profile",
        "max_attempts": 7,
        "attempts": 0,
        "queued_at": now,
        "records": 0,
    }
    schedule = world.row(schedule_id)
    assert (schedule.last_run_id, schedule.next_run_at) == (run.id, T0 + 2 * HOUR)


def test_schedule_not_yet_due_creates_nothing(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    result = world.tick(T0 + HOUR - timedelta(seconds=1))
    assert (result.claimed, world.runs(schedule_id), world.sent) == (0, [], [])
    assert world.row(schedule_id).next_run_at == T0 + HOUR


def test_enqueue_is_called_after_the_runs_are_committed(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    seen: list[str] = []

    def enqueue(run_ids: list[int]) -> None:
        with world.runtime.sessions() as other:  # another connection sees only committed rows
            seen.extend(other.scalars(select(Run.status).where(Run.id.in_(run_ids))))

    run_tick(world.runtime, enqueue, now=T0 + HOUR)
    assert seen == ["queued"]
    assert len(world.runs(schedule_id)) == 1


def test_due_schedules_are_claimed_in_bounded_batches(world: World) -> None:
    ids = [world.schedule("@hourly") for _ in range(5)]
    result = world.tick(T0 + HOUR, batch_size=2)
    assert (result.batches, result.created) == (3, 5)
    assert [[run.schedule_id for run in world.runs(s)] for s in ids] == [[s] for s in ids]
    assert [len(batch) for batch in world.sent] == [2, 2, 1]


def test_max_batches_leaves_the_rest_for_the_next_tick(world: World) -> None:
    for _ in range(5):
        world.schedule("@hourly")
    first = world.tick(T0 + HOUR, batch_size=2, max_batches=1)
    second = world.tick(T0 + HOUR, batch_size=2)
    assert (first.created, second.created) == (2, 3)


# --- catch-up, overlap, pause, once ------------------------------------------------------


def test_scheduler_down_for_a_day_creates_one_catch_up_run(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    back_at = T0 + timedelta(days=1, minutes=30)

    first = world.tick(back_at)
    again = world.tick(back_at + timedelta(seconds=5))

    assert (first.created, again.created, len(world.runs(schedule_id))) == (1, 0, 1)
    assert world.row(schedule_id).next_run_at == T0 + timedelta(days=1, hours=1)


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_previous_run_still_going_skips_the_fire_and_records_why(
    world: World, status: RunStatus
) -> None:
    schedule_id = world.schedule("@hourly")
    world.tick(T0 + HOUR)
    (previous,) = world.runs(schedule_id)
    world.set(Run, previous.id, status=status.value)

    result = world.tick(T0 + 2 * HOUR)

    assert (result.created, result.skipped, len(world.runs(schedule_id))) == (0, 1, 1)
    schedule = world.row(schedule_id)
    assert schedule.skipped_runs == 1
    assert schedule.last_skip_reason == (
        f"run {previous.id} was still {status.value} at 2024-05-06T14:00:00Z"
    )
    assert (schedule.next_run_at, schedule.last_run_id) == (T0 + 3 * HOUR, previous.id)


def test_finished_previous_run_lets_the_next_fire_run(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    world.tick(T0 + HOUR)
    world.finish(world.runs(schedule_id)[0].id, RunStatus.FAILED)
    assert world.tick(T0 + 2 * HOUR).created == 1


def test_paused_schedule_creates_nothing_until_resumed(world: World) -> None:
    schedule_id = world.schedule("@hourly")
    world.set(Schedule, schedule_id, is_paused=True)

    paused = world.tick(T0 + 5 * HOUR)
    assert (paused.claimed, world.runs(schedule_id)) == (0, [])
    assert world.row(schedule_id).next_run_at == T0 + HOUR

    world.set(Schedule, schedule_id, is_paused=False)
    assert world.tick(T0 + 5 * HOUR).created == 1  # one catch-up run, not five


def test_once_schedule_runs_once_then_is_done(world: World) -> None:
    schedule_id = world.schedule(None, now=T0)
    assert world.row(schedule_id).next_run_at == T0  # due at once, no jitter

    first = world.tick(T0 + timedelta(seconds=1))
    later = world.tick(T0 + timedelta(days=30))

    assert (first.created, later.claimed, len(world.runs(schedule_id))) == (1, 0, 1)
    schedule = world.row(schedule_id)
    assert (schedule.next_run_at, schedule.disabled_reason) == (None, None)


# --- consent at claim time ---------------------------------------------------------------

BREAKERS: dict[str, tuple[Callable[[World], None], str]] = {
    "revoked": (
        lambda w: w.set(
            Authorization, w.grant_id, revoked_at=T0, revoke_reason="user left the app"
        ),
        "authorization 1 revoked at 2024-05-06T12:00:00Z: user left the app",
    ),
    "expired": (
        lambda w: w.set(Authorization, w.grant_id, expires_at=T0 + timedelta(minutes=30)),
        "authorization 1 expired at 2024-05-06T12:30:00Z",
    ),
    "suspended": (
        lambda w: w.set(App, w.app_id, status=AppStatus.SUSPENDED.value),
        "app 1 is suspended, not approved",
    ),
}


@pytest.mark.parametrize("breaker", list(BREAKERS))
def test_schedule_whose_consent_is_gone_is_disabled_at_claim_with_the_reason(
    world: World, breaker: str
) -> None:
    schedule_id = world.schedule("@hourly")
    breaks, reason = BREAKERS[breaker]
    breaks(world)  # behind the registry's back: the tick is the safety net

    result = world.tick(T0 + HOUR)

    assert (result.created, result.disabled, world.runs(schedule_id)) == (0, 1, [])
    schedule = world.row(schedule_id)
    assert (schedule.next_run_at, schedule.disabled_reason) == (None, reason)


def test_revoking_through_the_registry_disables_the_schedule_before_any_tick(
    world: World,
) -> None:
    schedule_id = world.schedule("@hourly")
    with transaction(world.runtime.sessions) as session:
        registry.revoke_grant(session, world.grant_id, reason="changed my mind", now=T0)
    assert world.row(schedule_id).next_run_at is None
    assert world.tick(T0 + HOUR).claimed == 0


def test_ongoing_grant_schedule_stops_at_the_grants_expiry(world: World) -> None:
    grant_id = world.grant(Access.ONGOING, expires_at=T0 + timedelta(hours=1, minutes=30))
    schedule_id = world.schedule("@hourly", grant_id=grant_id)

    result = world.tick(T0 + HOUR)

    assert (result.created, result.disabled) == (1, 1)  # this run still happens
    schedule = world.row(schedule_id)
    assert schedule.next_run_at is None
    assert schedule.disabled_reason == (
        f"authorization {grant_id} expires at 2024-05-06T13:30:00Z, "
        "before the next run at 2024-05-06T14:00:00Z"
    )


def test_once_schedule_on_an_already_used_single_grant_is_disabled(world: World) -> None:
    grant_id = world.grant(Access.SINGLE)
    schedule_id = world.schedule(None, grant_id=grant_id)
    world.set(Authorization, grant_id, used_at=T0)

    result = world.tick(T0 + timedelta(seconds=1))

    assert (result.created, result.disabled) == (0, 1)
    assert "single-use and was already used" in (world.row(schedule_id).disabled_reason or "")


def test_schedule_whose_next_fire_cannot_be_computed_is_disabled_not_blocking(
    world: World,
) -> None:
    broken = world.schedule("@hourly")
    healthy = world.schedule("@hourly")
    world.set(Schedule, broken, timezone="Nowhere/Gone")  # written around the validators

    result = world.tick(T0 + HOUR)

    assert (result.created, result.disabled) == (1, 1)
    assert world.row(broken).disabled_reason == (
        "cannot compute the next run: unknown time zone 'Nowhere/Gone': "
        "use an IANA name such as 'Europe/Berlin'"
    )
    assert world.row(healthy).next_run_at == T0 + 2 * HOUR


# --- refused inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "timezone", "reason"),
    [
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 0 * * * *", "UTC", "seconds"),
        ("*/5 * * * *", "UTC", "minimum interval between runs is 15 minutes"),
        ("@daily", "Europe/Atlantis", "unknown time zone"),
    ],
)
def test_registry_refuses_bad_schedules_with_their_reason(
    world: World, cron: str, timezone: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        world.schedule(cron, timezone=timezone)


# --- jitter and daylight saving, tick by tick --------------------------------------------


def test_cron_schedules_are_jittered_deterministically_and_within_bounds(
    sqlite_url: str,
) -> None:
    jittered = build_world(sqlite_url, scheduler_max_jitter_seconds=900)
    ids = [jittered.schedule("@daily", max_jitter_seconds=900) for _ in range(20)]
    midnight = datetime(2024, 5, 7, tzinfo=UTC)
    offsets = [jittered.row(s).next_run_at - midnight for s in ids]  # type: ignore[operator]
    assert all(timedelta(0) <= offset < timedelta(seconds=900) for offset in offsets)
    assert len(set(offsets)) > 10

    jittered.tick(midnight + timedelta(seconds=900))  # all due: each moves one day on
    assert [jittered.row(s).next_run_at - midnight for s in ids] == [  # type: ignore[operator]
        offset + timedelta(days=1) for offset in offsets
    ]
    jittered.runtime.close()


DST_DAYS = [
    pytest.param("Europe/Berlin", "30 2 * * *", date(2024, 3, 31), id="berlin-spring"),
    pytest.param("Europe/Berlin", "30 2 * * *", date(2024, 10, 27), id="berlin-fall"),
    pytest.param("America/New_York", "30 2 * * *", date(2024, 3, 10), id="ny-spring"),
    pytest.param("America/New_York", "30 1 * * *", date(2024, 11, 3), id="ny-fall"),
    pytest.param("Australia/Lord_Howe", "15 2 * * *", date(2024, 10, 6), id="lord-howe-spring"),
    pytest.param("Australia/Lord_Howe", "45 1 * * *", date(2024, 4, 7), id="lord-howe-fall"),
]


@pytest.mark.parametrize(("timezone", "cron", "day"), DST_DAYS)
def test_scheduler_creates_exactly_one_run_per_day_across_dst(
    world: World, timezone: str, cron: str, day: date
) -> None:
    tz = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC) - timedelta(days=2)
    schedule_id = world.schedule(cron, timezone=timezone, now=start)
    for _ in range(5):
        due = world.row(schedule_id).next_run_at
        assert due is not None
        assert world.tick(due - timedelta(seconds=1)).created == 0
        assert world.tick(due).created == 1
        assert world.tick(due + timedelta(minutes=59)).created == 0  # the repeated hour
        world.finish(world.runs(schedule_id)[-1].id)

    days = Counter(run.queued_at.astimezone(tz).date() for run in world.runs(schedule_id))
    assert days == {day + timedelta(days=n): 1 for n in range(-2, 3)}


# --- losing messages ---------------------------------------------------------------------


def test_crash_between_commit_and_enqueue_is_recovered_by_the_reconciler(world: World) -> None:
    schedule_id = world.schedule("@hourly")

    def broker_down(_run_ids: list[int]) -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        run_tick(world.runtime, broker_down, now=T0 + HOUR)
    (run,) = world.runs(schedule_id)
    assert (run.status, run.enqueued_at) == ("queued", None)  # committed, shown as never sent

    threshold = timedelta(seconds=world.runtime.settings.reconcile_after_seconds)
    early = reconcile_runs(world.runtime, world.enqueue, now=T0 + HOUR + threshold / 2)
    late = reconcile_runs(world.runtime, world.enqueue, now=T0 + HOUR + threshold * 1.5)
    again = reconcile_runs(world.runtime, world.enqueue, now=T0 + HOUR + threshold * 1.6)
    assert (early, late, again, world.sent) == (0, 1, 0, [[run.id]])


def test_a_run_waiting_for_its_retry_is_resent_only_well_after_the_retry_was_due(
    world: World,
) -> None:
    """The worker publishes the retry with its countdown; the reconciler stands back until
    the retry's moment plus its threshold, and the run keeps the time it was first queued."""
    schedule_id = world.schedule("@hourly")
    (run_id,) = world.tick(T0 + HOUR).run_ids
    with transaction(world.runtime.sessions) as session:
        assert claim_run(session, run_id, lease_seconds=60)
        assert release_for_retry(
            session,
            run_id,
            error="the destination is unavailable",
            reason=FailureReason.DESTINATION_TRANSIENT,
            delay_seconds=600,
        )
    due = utcnow() + timedelta(seconds=600)
    threshold = timedelta(seconds=world.runtime.settings.reconcile_after_seconds)

    before = reconcile_runs(world.runtime, world.enqueue, now=due + threshold / 2)
    after = reconcile_runs(world.runtime, world.enqueue, now=due + threshold * 1.5)

    assert (before, after, world.sent) == (0, 1, [[run_id], [run_id]])  # the tick, then this
    (run,) = world.runs(schedule_id)
    assert run.queued_at == T0 + HOUR


def test_duplicate_message_for_a_run_is_dropped_by_the_worker_claim(world: World) -> None:
    world.schedule("@hourly")
    (run_id,) = world.tick(T0 + HOUR).run_ids
    world.enqueue([run_id])  # the reconciler sent it again meanwhile
    claims = []
    for _ in range(2):  # two workers receive "run N is due"
        with transaction(world.runtime.sessions) as session:
            claims.append(claim_run(session, run_id, lease_seconds=60, now=T0 + HOUR))
    assert claims == [True, False]
    with transaction(world.runtime.sessions) as session:
        assert finish_run(session, run_id, RunStatus.SUCCEEDED)


# --- the standalone loop and its CLI -----------------------------------------------------


def test_loop_ticks_until_stopped_and_finishes_its_tick(world: World) -> None:
    world.schedule(None, now=T0)
    ticked = threading.Event()
    results: list[TickResult] = []

    def on_tick(result: TickResult) -> None:
        results.append(result)
        ticked.set()

    loop = SchedulerLoop(world.runtime, world.enqueue, tick_seconds=30, on_tick=on_tick)
    runner = threading.Thread(target=loop.run)
    runner.start()
    assert ticked.wait(10)
    loop.stop()  # wakes the loop from its 30-second wait
    runner.join(10)
    assert not runner.is_alive()
    assert (loop.ticks, results[0].created, loop.failures) == (1, 1, 0)


def test_loop_survives_a_failing_tick(world: World) -> None:
    world.schedule(None, now=T0)

    def broker_blip(_run_ids: list[int]) -> None:
        raise ConnectionError("broker blip")

    loop = SchedulerLoop(
        world.runtime, broker_blip, tick_seconds=0.01, on_tick=lambda _result: loop.stop()
    )
    loop.run()  # the first tick fails after its commit; the second (nothing due) succeeds
    assert (loop.failures, loop.ticks) == (1, 1)


def _cli_env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PORTABILITY_DATABASE_URL": sqlite_url,
        "PORTABILITY_DATA_DIR": str(tmp_path / "state"),
        "PORTABILITY_SCHEDULER_MAX_JITTER_SECONDS": "0",
    }


def test_cli_tick_prints_what_it_did_as_json(
    world: World, sqlite_url: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    world.schedule(None, now=datetime.now(UTC) - HOUR)

    result = cli("scheduler", "tick", "--json", env=_cli_env(sqlite_url, tmp_path))

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "claimed": 1,
        "created": 1,
        "skipped": 0,
        "disabled": 0,
        "batches": 1,
        "run_ids": [1],
    }


def test_cli_run_stops_warm_on_sigterm(world: World, sqlite_url: str, tmp_path: Path) -> None:
    env = {**os.environ, **_cli_env(sqlite_url, tmp_path)}
    command = [sys.executable, "-c", "from portability.cli import main; main()"]
    with subprocess.Popen(
        [*command, "scheduler", "run", "--tick-seconds", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert "scheduler running" in process.stdout.readline()  # handlers are installed
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "scheduler stopped after" in out
    assert "SIGTERM: finishing the batch in hand" in err


def test_cli_tick_with_the_broker_down_says_the_runs_wait_for_the_reconciler(
    world: World, sqlite_url: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    world.schedule(None, now=datetime.now(UTC) - HOUR)
    env = {**_cli_env(sqlite_url, tmp_path), "PORTABILITY_BROKER_URL": "redis://127.0.0.1:19396/0"}

    result = cli("scheduler", "tick", env=env)

    assert result.exit_code == 1
    [line] = [text for text in result.error_lines if text.startswith("error:")]
    assert "Traceback" not in result.stderr
    assert "cannot be reached" in line and "stay queued: the reconciler sends them" in line
    with world.runtime.sessions() as session:
        assert [r.status for r in session.scalars(select(Run)).all()] == ["queued"]
