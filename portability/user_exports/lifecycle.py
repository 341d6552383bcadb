"""The life of a user export in the database: request, claim, progress, finish, cancel,
delete, expire. Every status change is a guarded ``UPDATE ... WHERE status IN (...)``: a stale
worker, a duplicate message or a racing cancel finds the row already moved and backs off.

Functions take a ``Session`` and never commit: the request, task or command owns the
transaction (and enqueues, or deletes objects, only after it commits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portability.categories import Category, parse_categories
from portability.db.base import check_id
from portability.db.models import PlatformUser
from portability.db.user_export_models import (
    ACTIVE,
    ExportFormat,
    ExportStatus,
    RequestedBy,
    UserExport,
)
from portability.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from portability.settings import Settings

__all__ = [
    "CANCELLABLE",
    "cancel_export",
    "claim_export",
    "delete_export",
    "due_to_expire",
    "fail_export",
    "finish_export",
    "get_export",
    "list_exports",
    "mark_published",
    "not_cancellable",
    "renew_export",
    "request_export",
    "requeue_export",
    "unpublished_exports",
]

CANCELLABLE = ACTIVE
#: An export whose archive may still be in the bucket: everything but deleted and expired.
_DELETABLE = (
    ExportStatus.QUEUED,
    ExportStatus.RUNNING,
    ExportStatus.READY,
    ExportStatus.FAILED,
    ExportStatus.CANCELLED,
    ExportStatus.EXPIRED,
)


def request_export(
    session: Session,
    settings: Settings,
    *,
    user_id: str,
    categories: str | Iterable[str],
    fmt: str = ExportFormat.JSON.value,
    requested_by: str = RequestedBy.USER.value,
    now: datetime,
) -> UserExport:
    """Queue an export of ``user_id``'s own data; any country may ask.

    Refused with ``ConflictError`` while another export of the user is queued or running
    (held by a partial unique index, so two concurrent requests cannot both pass), and with
    ``RateLimitedError`` past ``user_export_rate_limit`` requests per window.
    """
    if not settings.user_export_bucket:
        raise ConfigurationError(
            "downloads of users' data are not set up: set PORTABILITY_USER_EXPORT_BUCKET "
            "(and its credentials) first"
        )
    chosen = parse_categories(categories)
    if not chosen:
        raise ValidationError("choose at least one category, or all", field="categories")
    if fmt not in {f.value for f in ExportFormat}:
        raise ValidationError(f"format {fmt!r} must be json or text", field="format")
    user = session.get(PlatformUser, user_id)
    if user is None or user.deleted_at is not None:
        raise NotFoundError(f"user {user_id} not found")
    _refuse_second(session, user_id)
    window = timedelta(seconds=settings.user_export_rate_window_seconds)
    recent = session.scalars(
        select(UserExport.created_at)
        .where(UserExport.user_id == user_id, UserExport.created_at > now - window)
        .order_by(UserExport.created_at)
    ).all()
    if len(recent) >= settings.user_export_rate_limit:
        retry_after = math.ceil((recent[0] + window - now).total_seconds())
        raise RateLimitedError(
            f"{len(recent)} exports were requested in the last {_duration(window)}: the "
            f"next one can be requested in {_duration(timedelta(seconds=retry_after))}",
            retry_after=max(1, retry_after),
        )
    row = UserExport(
        user_id=user_id,
        categories=",".join(c.value for c in Category if c in chosen),
        format=fmt,
        status=ExportStatus.QUEUED.value,
        progress=0,
        requested_by=requested_by,
        attempts=0,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # a concurrent request won the partial unique index
        raise ConflictError(_busy_message(None)) from None
    return row


def _refuse_second(session: Session, user_id: str) -> None:
    active = session.scalar(
        select(UserExport).where(UserExport.user_id == user_id, UserExport.status.in_(ACTIVE))
    )
    if active is not None:
        raise ConflictError(_busy_message(active))


def _busy_message(active: UserExport | None) -> str:
    which = f"export {active.id} is {active.status}" if active else "another export is in progress"
    return f"{which}: one export at a time per user; wait for it to finish or cancel it"


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{math.ceil(seconds / 3600)} h"
    if seconds >= 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds} s"


def list_exports(session: Session, user_id: str, *, limit: int = 50) -> Sequence[UserExport]:
    """The user's exports, newest first."""
    return session.scalars(
        select(UserExport)
        .where(UserExport.user_id == user_id)
        .order_by(UserExport.created_at.desc(), UserExport.id.desc())
        .limit(limit)
    ).all()


def get_export(session: Session, export_id: int, *, user_id: str | None) -> UserExport:
    """One export; with ``user_id``, only if it is that user's (else ``NotFoundError``, the
    same answer as for an id that does not exist). ``None`` is staff's lookup."""
    row = session.get(UserExport, check_id(export_id, "export id"))
    if row is None or (user_id is not None and row.user_id != user_id):
        raise NotFoundError(f"export {export_id} not found")
    return row


def _move(
    session: Session,
    export_id: int,
    allowed: Iterable[ExportStatus],
    *extra: ColumnElement[bool],
    **values: object,
) -> bool:
    result = session.execute(
        update(UserExport)
        .where(UserExport.id == export_id, UserExport.status.in_(list(allowed)), *extra)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_export(session: Session, export_id: int, *, now: datetime, lease: float) -> bool:
    """queued -> running, or take over a running export whose worker's lease lapsed."""
    return _move(
        session,
        export_id,
        ACTIVE,
        or_(
            UserExport.status == ExportStatus.QUEUED.value,
            UserExport.lease_until < now,
            UserExport.lease_until.is_(None),
        ),
        status=ExportStatus.RUNNING.value,
        started_at=func.coalesce(UserExport.started_at, now),
        lease_until=now + timedelta(seconds=lease),
        attempts=UserExport.attempts + 1,
        progress=0,
        error=None,
    )


def renew_export(
    session: Session, export_id: int, *, attempt: int, progress: int, now: datetime, lease: float
) -> bool:
    """Record progress and extend the lease; False once the export was cancelled or deleted,
    or taken over by another worker (a later ``attempt``)."""
    return _move(
        session,
        export_id,
        [ExportStatus.RUNNING],
        UserExport.attempts == attempt,
        progress=progress,
        lease_until=now + timedelta(seconds=lease),
    )


def finish_export(
    session: Session,
    export_id: int,
    *,
    attempt: int,
    keys: list[str],
    sha256s: list[str],
    size: int,
    records: int,
    now: datetime,
    retention: timedelta,
) -> bool:
    return _move(
        session,
        export_id,
        [ExportStatus.RUNNING],
        UserExport.attempts == attempt,
        status=ExportStatus.READY.value,
        object_keys=keys,
        sha256s=sha256s,
        size_bytes=size,
        volumes=len(keys),
        records=records,
        progress=records,
        finished_at=now,
        expires_at=now + retention,
        lease_until=None,
    )


def fail_export(session: Session, export_id: int, *, error: str, now: datetime) -> bool:
    return _move(
        session,
        export_id,
        [ExportStatus.RUNNING],
        status=ExportStatus.FAILED.value,
        error=error,
        finished_at=now,
        lease_until=None,
    )


def requeue_export(session: Session, export_id: int, *, error: str, now: datetime) -> bool:
    """running -> queued after a transient failure; the task publishes its own retry."""
    return _move(
        session,
        export_id,
        [ExportStatus.RUNNING],
        status=ExportStatus.QUEUED.value,
        error=error,
        enqueued_at=now,
        lease_until=None,
    )


def cancel_export(session: Session, export_id: int, *, user_id: str | None, now: datetime) -> bool:
    """queued | running -> cancelled (a running worker stops at its next progress report).
    False when the export had already ended."""
    get_export(session, export_id, user_id=user_id)
    return _move(
        session,
        export_id,
        CANCELLABLE,
        status=ExportStatus.CANCELLED.value,
        finished_at=now,
        lease_until=None,
    )


def end_user_exports(session: Session, user_id: str, *, now: datetime) -> None:
    """The user deleted their account: exports in progress are cancelled (a running worker
    stops at its next report and deletes what it wrote) and ready archives become due, so the
    next housekeeping pass deletes them with the expired ones."""
    session.execute(
        update(UserExport)
        .where(UserExport.user_id == user_id, UserExport.status.in_(list(CANCELLABLE)))
        .values(status=ExportStatus.CANCELLED.value, finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(UserExport)
        .where(UserExport.user_id == user_id, UserExport.status == ExportStatus.READY.value)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def not_cancellable(row: UserExport) -> ConflictError:
    return ConflictError(
        f"export {row.id} is {row.status}: only a queued or running export can be cancelled"
    )


def delete_export(
    session: Session, export_id: int, *, user_id: str | None, now: datetime
) -> list[str]:
    """Mark the export deleted; the archive's keys, to delete once this commits."""
    row = get_export(session, export_id, user_id=user_id)
    keys = list(row.object_keys or [])
    if not _move(
        session,
        export_id,
        _DELETABLE,
        status=ExportStatus.DELETED.value,
        finished_at=func.coalesce(UserExport.finished_at, now),
        object_keys=None,
        lease_until=None,
    ):
        raise NotFoundError(f"export {export_id} is already deleted")
    return keys


def due_to_expire(
    session: Session, *, now: datetime, limit: int = 100
) -> list[tuple[int, list[str]]]:
    """Ready exports past their retention, each marked expired here (keys to delete after)."""
    rows = session.execute(
        select(UserExport.id, UserExport.object_keys)
        .where(UserExport.status == ExportStatus.READY.value, UserExport.expires_at <= now)
        .order_by(UserExport.expires_at)
        .limit(limit)
    ).all()
    expired: list[tuple[int, list[str]]] = []
    for export_id, keys in rows:
        if _move(
            session,
            export_id,
            [ExportStatus.READY],
            status=ExportStatus.EXPIRED.value,
            object_keys=None,
        ):
            expired.append((export_id, list(keys or [])))
    return expired


def unpublished_exports(
    session: Session, *, now: datetime, resend_after: float, limit: int = 1000
) -> list[int]:
    """Queued exports never published, or published so long ago the message was lost."""
    return list(
        session.scalars(
            select(UserExport.id)
            .where(
                UserExport.status == ExportStatus.QUEUED.value,
                or_(
                    UserExport.enqueued_at.is_(None),
                    UserExport.enqueued_at < now - timedelta(seconds=resend_after),
                ),
            )
            .order_by(UserExport.created_at)
            .limit(limit)
        )
    )


def mark_published(session: Session, export_ids: Sequence[int], *, now: datetime) -> None:
    if export_ids:
        session.execute(
            update(UserExport)
            .where(UserExport.id.in_(list(export_ids)))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
