"""The run lifecycle: the small surface through which runs are created, moved and re-run.

A run's status changes only by a guarded transition (``UPDATE ... WHERE id = :id AND status =
:expected``): a stale worker, a duplicate message or a racing cancel finds the row already
moved and backs off. Functions take a session and never commit; the caller owns the
transaction, and enqueues (``workers.app.enqueue_runs``) only after it has committed.

    queued ──claim──> running ──> succeeded | failed | cancelled
       ^                 │
       └──── retry ──────┘   (transient failure, attempts left)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from portability.attempts import end_line, start_line
from portability.categories import format_categories, parse_categories
from portability.db.base import check_id, utcnow
from portability.db.models import (
    Authorization,
    Destination,
    Run,
    RunCategory,
    RunStatus,
    Schedule,
)
from portability.errors import ConflictError, FailureReason, NotFoundError, ValidationError
from portability.events.producers import run_finished
from portability.scope import owned

__all__ = [
    "RunView",
    "cancel_app_run",
    "cancel_run",
    "claim_run",
    "create_run",
    "create_transfer",
    "finish_run",
    "get_run",
    "mark_enqueued",
    "release_for_retry",
    "renew_lease",
    "run_diagnostic",
    "run_schedule_now",
    "stale_queued_runs",
    "transition",
]


@dataclass(frozen=True, slots=True)
class RunView:
    """A detached, read-only picture of a run and its per-category results."""

    id: int
    status: RunStatus
    attempts: int
    categories: tuple[str, ...]
    records: int
    bytes: int
    failure_reason: str | None
    last_error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    per_category: dict[str, dict[str, Any]]
    rerun_of: int | None
    schedule_id: int | None


def create_run(
    session: Session,
    *,
    authorization_id: int,
    destination_id: int,
    categories: str | Iterable[str],
    schedule_id: int | None = None,
    max_attempts: int = 5,
    rerun_of: int | None = None,
    app_id: int | None,
    now: datetime | None = None,
) -> Run:
    """Create a queued run. Refuses categories outside the grant and another app's destination."""
    auth = session.get(Authorization, check_id(authorization_id, "authorization id"))
    if auth is None or (app_id is not None and auth.app_id != app_id):
        raise NotFoundError(f"authorization {authorization_id} not found")
    destination = session.get(Destination, check_id(destination_id, "destination id"))
    if destination is None or destination.app_id != auth.app_id:
        raise NotFoundError(f"destination {destination_id} not found for app {auth.app_id}")
    requested = parse_categories(categories)
    wider = requested - auth.category_set
    if wider:
        raise ValidationError(
            f"categories {format_categories(wider)} are not granted by authorization {auth.id} "
            f"(it grants {auth.categories})",
            field="categories",
        )
    run = Run(
        app_id=auth.app_id,
        schedule_id=schedule_id,
        authorization_id=auth.id,
        destination_id=destination.id,
        categories=format_categories(requested),
        status=RunStatus.QUEUED,
        max_attempts=max_attempts,
        rerun_of=rerun_of,
        queued_at=now or utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, run_id: int, *, app_id: int | None) -> RunView:
    """The run as a plain value; with ``app_id``, another app's run is "not found". ``app_id``
    is required: a developer's call names their app, staff pass ``None`` to reach any app."""
    run = session.get(Run, check_id(run_id, "run id"))
    if run is None or (app_id is not None and run.app_id != app_id):
        raise NotFoundError(f"run {run_id} not found")
    rows = session.scalars(select(RunCategory).where(RunCategory.run_id == run_id)).all()
    return RunView(
        id=run.id,
        status=RunStatus(run.status),
        attempts=run.attempts,
        categories=tuple(run.categories.split(",")),
        records=sum(r.records for r in rows),  # live while running, equal to the run's after
        bytes=sum(r.bytes for r in rows),
        failure_reason=run.failure_reason,
        last_error=run.last_error,
        queued_at=run.queued_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        per_category={
            r.category: {
                "status": r.status,
                "records": r.records,
                "bytes": r.bytes,
                "parts": r.parts,
                "manifest_key": r.manifest_key,
                "from_position": r.from_position,
                "to_position": r.to_position,
                "sequence": r.sequence,
                "replay_reason": r.replay_reason,
            }
            for r in rows
        },
        rerun_of=run.rerun_of,
        schedule_id=run.schedule_id,
    )


def transition(
    session: Session,
    run_id: int,
    expected: RunStatus | Iterable[RunStatus],
    new: RunStatus,
    **values: Any,
) -> bool:
    """Move a run from ``expected`` to ``new``; False (and no change) if it was not there."""
    states = [expected] if isinstance(expected, RunStatus) else list(expected)
    # A Core statement on the session's connection: the ORM's bulk-update machinery costs
    # more than the statement, and no loaded Run is kept in step anyway.
    result = session.connection().execute(
        update(_RUNS)
        .where(_RUNS.c.id == run_id, _RUNS.c.status.in_([s.value for s in states]))
        .values(status=new.value, **values)
    )
    _forget(session, run_id)
    return bool(result.rowcount)


_RUNS = cast(Table, Run.__table__)
_CLAIM = (
    update(_RUNS)
    .where(
        _RUNS.c.id == bindparam("p_run"),
        (
            (_RUNS.c.status == RunStatus.QUEUED.value)
            & (_RUNS.c.not_before.is_(None) | (_RUNS.c.not_before <= bindparam("p_now")))
        )
        | (
            (_RUNS.c.status == RunStatus.RUNNING.value)
            & (_RUNS.c.lease_expires_at < bindparam("p_now"))
        ),
    )
    .values(
        status=RunStatus.RUNNING.value,
        attempts=_RUNS.c.attempts + 1,
        started_at=bindparam("p_now"),
        lease_expires_at=bindparam("p_until"),
        not_before=None,
        attempt_log=func.coalesce(_RUNS.c.attempt_log, "").concat(bindparam("p_start")),
    )
)


def _ended(line: str) -> Any:
    """``attempt_log`` with ``line`` appended, in the statement that moves the run."""
    return func.coalesce(_RUNS.c.attempt_log, "").concat(line)


def _forget(session: Session, run_id: int) -> None:
    """Expire a Run this session has loaded: the row just moved under it."""
    cached = session.identity_map.get(session.identity_key(Run, run_id))
    if cached is not None:
        session.expire(cached)


def claim_run(
    session: Session, run_id: int, *, lease_seconds: int, now: datetime | None = None
) -> bool:
    """Take a run for execution: ``queued`` -> ``running``, counting the attempt.

    A ``running`` run whose lease has lapsed (its worker died) is taken over the same way.
    Returns False when the run is already final, not due yet (``not_before``), or another
    worker holds a live lease: the message is a duplicate or early and must be dropped.
    One guarded ``UPDATE``; the run is read only when it cannot be claimed.
    """
    now = now or utcnow()
    moved = session.connection().execute(
        _CLAIM,
        {
            "p_run": run_id,
            "p_now": now,
            "p_until": now + timedelta(seconds=lease_seconds),
            "p_start": start_line(now),
        },
    )
    _forget(session, run_id)
    if moved.rowcount:
        return True
    if session.scalar(select(Run.id).where(Run.id == run_id)) is None:
        raise NotFoundError(f"run {run_id} not found")
    return False


def renew_lease(session: Session | Connection, run_id: int, *, lease_seconds: int) -> None:
    """Extend a running run's lease; ``ConflictError`` if the run moved (cancelled, taken over)."""
    moved = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise ConflictError(f"run {run_id} is no longer running")


def release_for_retry(
    session: Session,
    run_id: int,
    *,
    error: str,
    reason: FailureReason,
    delay_seconds: float,
    detail: str | None = None,
) -> bool:
    """``running`` -> ``queued`` after a transient failure, not to start before the backoff.

    ``error`` is shown to the developer; ``detail`` (raw diagnostics) to staff only. The
    retry's message is due at ``not_before``, so that is when the run counts as enqueued:
    the reconciler re-sends it only if it is still queued well after then. ``queued_at``
    stays the run's creation time: it is the partition key of run history."""
    now = utcnow()
    due = now + timedelta(seconds=delay_seconds)
    return transition(
        session,
        run_id,
        RunStatus.RUNNING,
        RunStatus.QUEUED,
        last_error=error,
        error_detail=detail,
        failure_reason=reason.value,
        lease_expires_at=None,
        not_before=due,
        enqueued_at=due,
        attempt_log=_ended(
            end_line(now, RunStatus.QUEUED.value, reason=reason.value, error=error, detail=detail)
        ),
        **_TOTALS,
    )


def finish_run(
    session: Session,
    run_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    reason: FailureReason | None = None,
    expected: RunStatus | Iterable[RunStatus] = RunStatus.RUNNING,
    detail: str | None = None,
) -> bool:
    """Record a final status with its typed reason and message.

    ``error`` is in our words and shown to the developer; ``detail`` (a server's or driver's
    raw text) is stored apart, in ``runs.error_detail``, for staff only."""
    if not status.is_final:
        raise ValueError(f"{status} is not a final status")
    now = utcnow()
    ended = end_line(
        now, status.value, reason=reason.value if reason else None, error=error, detail=detail
    )
    moved = transition(
        session,
        run_id,
        expected,
        status,
        finished_at=now,
        attempt_log=_ended(ended),
        lease_expires_at=None,
        last_error=error,
        error_detail=detail,
        failure_reason=reason.value if reason else None,
        **_TOTALS,
    )
    if moved:  # its event commits with the status, or neither does
        run_finished(session, run_id)
    return moved


def run_diagnostic(session: Session, run_id: int) -> str | None:
    """The raw diagnostic of a run's last failure: for staff (CLI) only, never for developers,
    which is why ``RunView`` does not carry it."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    return run.error_detail


_OF_RUN = RunCategory.run_id == _RUNS.c.id
# The run's records and bytes, summed from its categories as it leaves ``running`` (categories
# commit concurrently; one sum at the end beats a contended counter).
_TOTALS: dict[str, Any] = {
    "records": select(func.coalesce(func.sum(RunCategory.records), 0))
    .where(_OF_RUN)
    .scalar_subquery(),
    "bytes": select(func.coalesce(func.sum(RunCategory.bytes), 0)).where(_OF_RUN).scalar_subquery(),
}


def cancel_run(session: Session, run_id: int, *, reason: str) -> bool:
    """Cancel a queued or running run; a running export stops at its next lease renewal."""
    check_id(run_id, "run id")
    return finish_run(
        session,
        run_id,
        RunStatus.CANCELLED,
        error=reason,
        reason=None,
        expected=[RunStatus.QUEUED, RunStatus.RUNNING],
    )


def mark_enqueued(session: Session, run_ids: Iterable[int], *, now: datetime | None = None) -> None:
    ids = list(run_ids)
    if ids:
        session.execute(
            update(Run)
            .where(Run.id.in_(ids))
            .values(enqueued_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )


def stale_queued_runs(
    session: Session, *, older_than_seconds: int, limit: int = 1000, now: datetime | None = None
) -> list[int]:
    """Runs the broker may have lost: queued (and due) for longer than the threshold, or
    running with a lapsed lease. The reconciler re-enqueues them; duplicates are harmless."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=older_than_seconds)
    queued = select(Run.id).where(
        Run.status == RunStatus.QUEUED,
        Run.queued_at < cutoff,
        (Run.enqueued_at.is_(None)) | (Run.enqueued_at < cutoff),
        (Run.not_before.is_(None)) | (Run.not_before <= now),
    )
    lapsed = select(Run.id).where(Run.status == RunStatus.RUNNING, Run.lease_expires_at < cutoff)
    ids = list(session.scalars(queued.limit(limit)).all())
    ids += list(session.scalars(lapsed.limit(limit)).all())
    return sorted(set(ids))


# -- the developer API's writes (issue 17) -------------------------------------------------


def create_transfer(
    session: Session,
    *,
    app_id: int,
    authorization_id: int,
    destination_id: int,
    categories: str | Iterable[str],
    max_attempts: int,
    schedule_id: int | None = None,
    now: datetime | None = None,
) -> Run:
    """A one-time transfer of the app's own live grant to its own destination.

    ``all`` means the grant's categories. The run is stamped ``enqueued_at`` here: the caller
    publishes it right after the commit, and if that publish is lost the reconciler sends it
    again once ``reconcile_after_seconds`` have passed.
    """
    from portability.registry import check_grant_is_live, granted_or

    now = now or utcnow()
    auth = owned(session, Authorization, authorization_id, app_id)
    owned(session, Destination, destination_id, app_id)
    check_grant_is_live(auth, now)
    run = create_run(
        session,
        authorization_id=auth.id,
        destination_id=destination_id,
        categories=granted_or(auth, categories),
        schedule_id=schedule_id,
        max_attempts=max_attempts,
        app_id=app_id,
        now=now,
    )
    run.enqueued_at = now
    session.flush()
    return run


def run_schedule_now(session: Session, *, app_id: int, schedule_id: int, max_attempts: int) -> Run:
    """A run of the schedule now, besides its planned ones (which keep their times)."""
    schedule = owned(session, Schedule, schedule_id, app_id)
    return create_transfer(
        session,
        app_id=app_id,
        authorization_id=schedule.authorization_id,
        destination_id=schedule.destination_id,
        categories=schedule.categories,
        max_attempts=max_attempts,
        schedule_id=schedule.id,
    )


def cancel_app_run(session: Session, *, app_id: int, run_id: int) -> None:
    """Cancel the app's queued or running run; ``ConflictError`` once it has finished."""
    run = owned(session, Run, run_id, app_id)
    status = run.status
    if not cancel_run(session, run_id, reason="cancelled by the developer"):
        raise ConflictError(f"run {run_id} is {status}: only queued or running runs can cancel")
