"""Retrying failed runs: which may be retried, and the one way a retry is created.

A retry is a new queued run doing what a failed or cancelled one did; it continues from the
stream's position, so nothing already delivered is sent again. The rules that keep support
from doing harm live here, not in the CLI:

- only a failed or cancelled run is retried (a succeeded one has nothing left to do);
- a run already retried by a queued or running run is not retried again: if the broker was
  down, that run waits for the reconciler, and a second one would export twice;
- a run whose grant no longer allows the transfer (revoked, expired, single-use and spent,
  app not approved, user no longer eligible) is refused with that reason.

Functions take a session and never commit; the caller enqueues after its commit.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.consent import check_consent
from portability.db.base import check_id, utcnow
from portability.db.models import App, Authorization, PlatformUser, Run, RunStatus
from portability.errors import ConflictError, ConsentError, NotFoundError
from portability.runs import create_run

__all__ = ["RetryCandidate", "failed_runs", "rerun", "why_not_retry"]

_ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class RetryCandidate:
    """A failed run and, if it may not be retried, why."""

    run_id: int
    app_id: int
    authorization_id: int
    failure_reason: str | None
    refusal: str | None


def why_not_retry(
    session: Session, run: Run, *, eligible_countries: Set[str], now: datetime | None = None
) -> str | None:
    """``None`` if ``run`` may be retried now, else the reason in plain words."""
    refusal = _refusal(session, run, eligible_countries=eligible_countries, now=now)
    return None if refusal is None else str(refusal)


def _refusal(
    session: Session, run: Run, *, eligible_countries: Set[str], now: datetime | None
) -> ConflictError | ConsentError | None:
    status = RunStatus(run.status)
    if status is RunStatus.SUCCEEDED:
        return ConflictError(f"run {run.id} succeeded: there is nothing to retry")
    if status in {RunStatus.QUEUED, RunStatus.RUNNING}:
        return ConflictError(
            f"run {run.id} is still {status.value}: follow it with `portability runs wait "
            f"{run.id}` or cancel it first"
        )
    retry = session.scalar(
        select(Run).where(Run.rerun_of == run.id, Run.status.in_(_ACTIVE)).limit(1)
    )
    if retry is not None:
        return ConflictError(
            f"run {run.id} was already retried as run {retry.id}, which is {retry.status} "
            "(a queued run is sent by the reconciler even if the broker was down)"
        )
    grant = session.get(Authorization, run.authorization_id)
    app = session.get(App, run.app_id)
    user = session.get(PlatformUser, grant.user_id) if grant is not None else None
    if grant is None or app is None or user is None:
        return ConsentError(f"run {run.id}'s grant, app or user no longer exists")
    try:
        check_consent(
            app=app,
            grant=grant,
            user=user,
            now=now or utcnow(),
            eligible_countries=eligible_countries,
            single_already_claimed_by_this_run=grant.used_by_run_id == run.id,
        )
    except ConsentError as exc:
        return ConsentError(f"run {run.id} cannot be retried: {exc}")
    return None


def rerun(
    session: Session,
    run_id: int,
    *,
    eligible_countries: Set[str],
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Run:
    """A new queued run doing what failed or cancelled run ``run_id`` did.

    ``ConflictError`` when it must not be retried (see the module docstring), with the reason;
    ``ConsentError`` when its grant no longer allows the transfer.
    """
    old = session.get(Run, check_id(run_id, "run id"))
    if old is None:
        raise NotFoundError(f"run {run_id} not found")
    refusal = _refusal(session, old, eligible_countries=eligible_countries, now=now)
    if refusal is not None:
        raise refusal
    return create_run(
        session,
        app_id=None,
        authorization_id=old.authorization_id,
        destination_id=old.destination_id,
        categories=old.categories,
        schedule_id=old.schedule_id,
        max_attempts=max_attempts or old.max_attempts,
        rerun_of=old.id,
        now=now,
    )


def failed_runs(
    session: Session,
    *,
    eligible_countries: Set[str],
    app_id: int | None = None,
    since: datetime | None = None,
    limit: int = 1000,
    now: datetime | None = None,
) -> list[RetryCandidate]:
    """Failed runs (newest first) not yet retried, each with why it may not be, if so."""
    query = select(Run).where(Run.status == RunStatus.FAILED.value).order_by(Run.id.desc())
    if app_id is not None:
        query = query.where(Run.app_id == check_id(app_id, "app id"))
    if since is not None:
        query = query.where(Run.queued_at >= since)
    retried = select(Run.rerun_of).where(Run.rerun_of.is_not(None))
    query = query.where(Run.id.not_in(retried)).limit(limit)
    return [
        RetryCandidate(
            run_id=run.id,
            app_id=run.app_id,
            authorization_id=run.authorization_id,
            failure_reason=run.failure_reason,
            refusal=why_not_retry(session, run, eligible_countries=eligible_countries, now=now),
        )
        for run in session.scalars(query).all()
    ]
