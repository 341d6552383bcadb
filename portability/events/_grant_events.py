"""The grants' and apps' events: ``authorization.created``, ``authorization.removed`` and
``schedule.disabled``, each recorded in the transaction of the change it reports (the seams
are listed in ``portability.events.producers``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.models import Access, App, Authorization, PlatformUser, Schedule
from portability.events._types import EventType, RemovalReason
from portability.events.outbox import record_event

__all__ = ["app_suspended", "grant_created", "grant_removed", "schedules_disabled", "suspension"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Conn = Session | Connection


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def suspension(app_status_changed_at: datetime | None) -> str:
    """Names one suspension of an app (its status change's time, in microseconds): the
    grants' ``authorization.removed`` is recorded once per suspension, so suspending an app
    again after approving it again tells its developer again."""
    moment = app_status_changed_at or _EPOCH
    return str((moment - _EPOCH) // timedelta(microseconds=1))


def grant_created(conn: Conn, grant: Authorization) -> None:
    record_event(
        conn,
        grant.app_id,
        EventType.AUTHORIZATION_CREATED,
        {
            "authorization_id": grant.id,
            "categories": grant.categories.split(","),
            "access": grant.access,
            "granted_at": _iso(grant.granted_at),
            "expires_at": _iso(grant.expires_at),
        },
        user_id=grant.user_id,
    )


def grant_removed(
    conn: Conn,
    authorization_id: int,
    reason: RemovalReason,
    message: str | None = None,
    *,
    occasion: str | None = None,
) -> None:
    """``authorization.removed``, at most once per grant, reason and ``occasion`` (which
    suspension, for ``app_suspended``)."""
    grant = conn.execute(
        select(Authorization.app_id, Authorization.user_id).where(
            Authorization.id == authorization_id
        )
    ).one()
    dedup_key = f"authorization.removed:{authorization_id}:{reason.value}"
    record_event(
        conn,
        grant.app_id,
        EventType.AUTHORIZATION_REMOVED,
        {"authorization_id": authorization_id, "reason": reason.value, "message": message},
        user_id=grant.user_id,
        dedup_key=f"{dedup_key}:{occasion}" if occasion is not None else dedup_key,
    )


def app_suspended(session: Session, app: App, message: str) -> int:
    """``authorization.removed`` (``app_suspended``) for each grant of ``app`` that was live
    when it was just suspended (not revoked, expired or spent); returns how many. A run or
    schedule meeting the suspension later finds these and records nothing more."""
    now = app.status_changed_at or utcnow()
    live = session.execute(
        select(Authorization.id, Authorization.user_id)
        .join(PlatformUser, PlatformUser.id == Authorization.user_id)
        .where(
            Authorization.app_id == app.id,
            Authorization.revoked_at.is_(None) | (Authorization.revoked_at > now),
            Authorization.expires_at.is_(None) | (Authorization.expires_at > now),
            (Authorization.access != Access.SINGLE.value) | Authorization.used_at.is_(None),
        )
        .order_by(Authorization.id)
    ).all()
    occasion = suspension(app.status_changed_at)
    reason = RemovalReason.APP_SUSPENDED.value
    for grant in live:
        record_event(
            session,
            app.id,
            EventType.AUTHORIZATION_REMOVED,
            {"authorization_id": grant.id, "reason": reason, "message": message},
            user_id=grant.user_id,
            dedup_key=f"authorization.removed:{grant.id}:{reason}:{occasion}",
        )
    return len(live)


def schedules_disabled(conn: Conn, schedule_ids: Iterable[int], reason: str, message: str) -> None:
    """``schedule.disabled`` for each schedule that just stopped (reason: a
    ``ScheduleDisabledReason``; message: the schedule's recorded ``disabled_reason``)."""
    ids = list(schedule_ids)
    if not ids:
        return
    rows = conn.execute(
        select(
            Schedule.id, Schedule.app_id, Schedule.authorization_id, Schedule.destination_id
        ).where(Schedule.id.in_(ids))
    ).all()
    for row in rows:
        record_event(
            conn,
            row.app_id,
            EventType.SCHEDULE_DISABLED,
            {
                "schedule_id": row.id,
                "authorization_id": row.authorization_id,
                "destination_id": row.destination_id,
                "reason": reason,
                "message": message,
            },
        )
