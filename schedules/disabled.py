"""The tick's share of the events: ``schedule.disabled`` for each schedule it stopped, and
``authorization.removed`` for a grant it found expired, in the tick's own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from portability.db.models import Access, AppStatus
from portability.events import RemovalReason, ScheduleDisabledReason
from portability.events.producers import grant_removed, schedules_disabled
from schedules.decide import Action, Decision, DueSchedule

__all__ = ["announce_disabled"]


def announce_disabled(
    session: Session, decided: Sequence[tuple[DueSchedule, Decision]], now: datetime
) -> None:
    """Record the events of the tick's decisions that end a schedule (few: most create runs)."""
    for due, decision in decided:
        if decision.action is Action.SKIP or decision.reason is None:
            continue
        code = _code(due, decision, now)
        schedules_disabled(session, [due.id], code.value, decision.reason)
        if code is ScheduleDisabledReason.AUTHORIZATION_EXPIRED:
            grant_removed(session, due.authorization_id, RemovalReason.EXPIRED, decision.reason)


def _code(due: DueSchedule, decision: Decision, now: datetime) -> ScheduleDisabledReason:
    """The rule of ``schedules.decide`` that ended the schedule, in its order."""
    if decision.action is Action.CREATE:
        return ScheduleDisabledReason.AUTHORIZATION_EXPIRING
    if due.app_status == AppStatus.SUSPENDED:
        return ScheduleDisabledReason.APP_SUSPENDED
    if due.app_status == AppStatus.REJECTED:
        return ScheduleDisabledReason.APP_REJECTED
    if due.app_status != AppStatus.APPROVED:
        return ScheduleDisabledReason.APP_NOT_APPROVED
    if due.revoked_at is not None and due.revoked_at <= now:
        return ScheduleDisabledReason.AUTHORIZATION_REVOKED
    if due.expires_at is not None and due.expires_at <= now:
        return ScheduleDisabledReason.AUTHORIZATION_EXPIRED
    if due.access == Access.SINGLE and due.used_at is not None:
        return ScheduleDisabledReason.SINGLE_USE_SPENT
    return ScheduleDisabledReason.INVALID_SCHEDULE
