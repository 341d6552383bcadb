"""What each state change records: one function per seam, called in the change's transaction.

The seams (each calls exactly one of these, and only when its row really moved):

- ``portability.runs.finish_run`` -> ``run_finished``: ``run.succeeded|failed|cancelled``, and
  ``authorization.removed`` when the run spent a single-use grant or was cancelled for consent;
- ``portability.export._outcome.finish`` -> ``run_failed_permanently``: ``destination.failing``
  after N consecutive permanent failures of one destination;
- ``portability.export._close.record_delivery`` -> ``stream_replayed``;
- ``portability.registry.grant`` / ``revoke_grant`` -> ``grant_created`` / ``grant_removed``;
- ``portability.registry.set_app_status`` (suspending) -> ``app_suspended``:
  ``authorization.removed`` for each of the app's live grants, at the moment of suspension;
- ``portability.registry.disable_schedules`` and the scheduler's tick -> ``schedules_disabled``.

Bodies name rows by id and carry no platform user id (``user_id`` goes beside the body and is
rendered as the app's pseudonym).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.models import (
    Access,
    App,
    AppStatus,
    Authorization,
    PlatformUser,
    Run,
    RunCategory,
    RunStatus,
    Stream,
)
from portability.errors import FailureReason
from portability.events._grant_events import (
    app_suspended,
    grant_created,
    grant_removed,
    schedules_disabled,
    suspension,
)
from portability.events._types import EventType, RemovalReason
from portability.events.outbox import record_event

__all__ = [
    "app_suspended",
    "grant_created",
    "grant_removed",
    "run_failed_permanently",
    "run_finished",
    "schedules_disabled",
    "stream_replayed",
]

_RUN_EVENTS = {
    RunStatus.SUCCEEDED.value: EventType.RUN_SUCCEEDED,
    RunStatus.FAILED.value: EventType.RUN_FAILED,
    RunStatus.CANCELLED.value: EventType.RUN_CANCELLED,
}

Conn = Session | Connection


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def run_finished(session: Session, run_id: int) -> None:
    """The run just reached a final status (its row moved in this transaction)."""
    conn = session
    row = conn.execute(
        select(Run, Authorization.user_id, Authorization.access, Authorization.used_by_run_id)
        .join(Authorization, Authorization.id == Run.authorization_id)
        .where(Run.id == run_id)
        .execution_options(populate_existing=True)
    ).one()
    run: Run = row[0]
    categories = conn.execute(select(RunCategory).where(RunCategory.run_id == run_id)).scalars()
    body: dict[str, Any] = {
        "run_id": run.id,
        "status": run.status,
        "schedule_id": run.schedule_id,
        "authorization_id": run.authorization_id,
        "destination_id": run.destination_id,
        "rerun_of": run.rerun_of,
        "attempts": run.attempts,
        "records": run.records,
        "bytes": run.bytes,
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "failure_reason": run.failure_reason,
        "message": run.last_error,
        "categories": {
            c.category: {
                "status": c.status,
                "records": c.records,
                "bytes": c.bytes,
                "parts": c.parts,
                "sequence": c.sequence,
                "manifest_key": c.manifest_key,
                "replay_reason": c.replay_reason,
            }
            for c in categories
        },
    }
    record_event(
        conn,
        run.app_id,
        _RUN_EVENTS[run.status],
        body,
        user_id=row.user_id,
        dedup_key=f"run:{run.id}:{run.status}",
    )
    if (
        run.status == RunStatus.SUCCEEDED
        and row.access == Access.SINGLE
        and row.used_by_run_id == run.id
    ):
        grant_removed(conn, run.authorization_id, RemovalReason.SINGLE_USE_SPENT)
    elif run.status == RunStatus.CANCELLED and run.failure_reason == FailureReason.CONSENT:
        found = _why_consent_failed(conn, run)
        if found is not None:
            reason, occasion = found
            grant_removed(conn, run.authorization_id, reason, occasion=occasion)


def _why_consent_failed(conn: Session, run: Run) -> tuple[RemovalReason, str | None] | None:
    """Which rule of ``portability.consent.check_consent`` the grant now breaks (and, for a
    suspension, which one), or None when the grant still stands (a request for categories it
    does not grant) or its developer was already told."""
    row = conn.execute(
        select(
            Authorization,
            App.status,
            App.status_changed_at,
            PlatformUser.id,
            PlatformUser.deleted_at,
        )
        .join(App, App.id == Authorization.app_id)
        .outerjoin(PlatformUser, PlatformUser.id == Authorization.user_id)
        .where(Authorization.id == run.authorization_id)
    ).one_or_none()
    if row is None:
        return None
    grant: Authorization = row[0]
    now = utcnow()
    if row.status == AppStatus.SUSPENDED.value:
        # Recorded when the app was suspended (``app_suspended``); this finds it there.
        return RemovalReason.APP_SUSPENDED, suspension(row.status_changed_at)
    if row.status != AppStatus.APPROVED.value:
        # Pending: not removed, the app just may not receive yet. Rejected: only a suspended
        # app can be rejected once it holds grants, and its suspension told the developer.
        return None
    if row.id is None or row.deleted_at is not None:
        return RemovalReason.USER_DELETED, None
    if grant.revoked_at is not None and grant.revoked_at <= now:
        return RemovalReason.USER_REVOKED, None
    if grant.expires_at is not None and grant.expires_at <= now:
        return RemovalReason.EXPIRED, None
    if grant.access == Access.SINGLE and grant.used_by_run_id not in {run.id, run.rerun_of}:
        return RemovalReason.SINGLE_USE_SPENT, None
    if not (run.category_set & grant.category_set):
        return None
    return RemovalReason.USER_NOT_ELIGIBLE, None  # the one rule left: the user's country


def run_failed_permanently(conn: Session, run_id: int, *, failing_after: int) -> None:
    """``destination.failing`` once, when the run just failed makes ``failing_after``
    consecutive permanent destination failures of its destination (runs of every grant)."""
    run = conn.execute(select(Run).where(Run.id == run_id)).scalar_one()
    if run.failure_reason != FailureReason.DESTINATION_PERMANENT:
        return
    recent = conn.execute(
        select(Run.id, Run.status, Run.failure_reason, Run.last_error)
        .where(
            Run.destination_id == run.destination_id,
            Run.status.in_([s.value for s in _FINAL]),
            Run.finished_at.is_not(None),
        )
        .order_by(Run.finished_at.desc(), Run.id.desc())
        .limit(failing_after + 1)
    ).all()
    streak = 0
    for row in recent:
        if row.failure_reason != FailureReason.DESTINATION_PERMANENT:
            break
        streak += 1
    if streak != failing_after:
        return  # not there yet, or already told at the streak's Nth failure
    record_event(
        conn,
        run.app_id,
        EventType.DESTINATION_FAILING,
        {
            "destination_id": run.destination_id,
            "consecutive_failures": streak,
            "run_ids": [row.id for row in recent[:streak]],
            "message": run.last_error,
            "action": "fix the destination (its endpoint, bucket, credentials or permissions "
            "as the message says), then re-run the failed runs",
        },
        dedup_key=f"destination.failing:{run.destination_id}:{run.id}",
    )


_FINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def stream_replayed(
    conn: Conn,
    stream_id: int,
    *,
    run_id: int | None,
    reason: str | None,
    sequence: int,
    manifest_key: str,
    records: int,
) -> None:
    """A full replay's manifest was just recorded as the stream's position."""
    row = conn.execute(
        select(
            Stream.authorization_id,
            Stream.destination_id,
            Stream.category,
            Authorization.app_id,
            Authorization.user_id,
        )
        .join(Authorization, Authorization.id == Stream.authorization_id)
        .where(Stream.id == stream_id)
    ).one()
    record_event(
        conn,
        row.app_id,
        EventType.STREAM_REPLAYED,
        {
            "stream_id": stream_id,
            "authorization_id": row.authorization_id,
            "destination_id": row.destination_id,
            "category": row.category,
            "reason": reason,
            "sequence": sequence,
            "manifest_key": manifest_key,
            "records": records,
            "run_id": run_id,
        },
        user_id=row.user_id,
        dedup_key=f"stream.replayed:{stream_id}:{sequence}",
    )
