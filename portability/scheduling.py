"""Staff control of schedules: pause, resume, run now. Each change is audited by the caller's
transaction (``portability.audit``); functions take a session and never commit."""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.consent import check_consent
from portability.db.base import check_id, utcnow
from portability.db.models import App, Authorization, PlatformUser, Run, RunStatus, Schedule
from portability.errors import ConflictError, NotFoundError
from portability.runs import create_run

__all__ = ["get_schedule", "pause_schedule", "resume_schedule", "run_schedule_now"]


def get_schedule(session: Session, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, check_id(schedule_id, "schedule id"))
    if schedule is None:
        raise NotFoundError(f"schedule {schedule_id} not found")
    return schedule


def pause_schedule(session: Session, schedule_id: int) -> Schedule:
    """Stop claiming the schedule until it is resumed; a run in progress goes on."""
    schedule = get_schedule(session, schedule_id)
    if schedule.is_paused:
        raise ConflictError(f"schedule {schedule_id} is already paused")
    schedule.is_paused = True
    session.flush()
    return schedule


def resume_schedule(session: Session, schedule_id: int) -> Schedule:
    """Claim the schedule again; a fire missed while paused runs once, at the next tick."""
    schedule = get_schedule(session, schedule_id)
    if not schedule.is_paused:
        raise ConflictError(f"schedule {schedule_id} is not paused")
    if schedule.next_run_at is None:
        raise ConflictError(
            f"schedule {schedule_id} is finished or disabled "
            f"({schedule.disabled_reason or 'its one run is done'}): it cannot resume"
        )
    schedule.is_paused = False
    session.flush()
    return schedule


def run_schedule_now(
    session: Session,
    schedule_id: int,
    *,
    eligible_countries: Set[str],
    max_attempts: int,
    now: datetime | None = None,
) -> Run:
    """A queued run of the schedule now, outside its cron; refused while one is in progress
    (two runs of one stream never export at once) or when consent no longer allows it."""
    now = now or utcnow()
    schedule = get_schedule(session, schedule_id)
    active = session.scalar(
        select(Run.id).where(
            Run.schedule_id == schedule.id,
            Run.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
        )
    )
    if active is not None:
        raise ConflictError(f"schedule {schedule_id} already has run {active} in progress")
    grant = session.get(Authorization, schedule.authorization_id)
    app = session.get(App, schedule.app_id)
    assert grant is not None and app is not None  # foreign keys
    user = session.get(PlatformUser, grant.user_id)
    assert user is not None
    check_consent(app=app, grant=grant, user=user, now=now, eligible_countries=eligible_countries)
    return create_run(
        session,
        app_id=None,
        authorization_id=schedule.authorization_id,
        destination_id=schedule.destination_id,
        categories=schedule.categories,
        schedule_id=schedule.id,
        max_attempts=max_attempts,
        now=now,
    )
