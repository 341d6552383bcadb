"""What support sees of runs: filtered lists and one run explained in plain words.

Read-only, over plain values (dicts ready for a table or JSON): ``list_runs`` (newest first,
paginated), ``describe_run`` (app, user, grant state, destination without secrets, each
category's counts, positions and manifest key, every attempt, the error) and ``diagnose``,
the one-line reading of a run's outcome by its typed failure reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.attempts import parse_attempts
from portability.db.base import check_id, utcnow
from portability.db.models import (
    App,
    Authorization,
    Destination,
    PlatformUser,
    Run,
    RunCategory,
    RunStatus,
)
from portability.errors import FailureReason, NotFoundError
from portability.pseudonyms import pseudonym

__all__ = ["describe_run", "diagnose", "grant_state", "list_runs", "run_row"]


def list_runs(
    session: Session,
    *,
    statuses: Sequence[RunStatus] = (),
    app_id: int | None = None,
    user_id: str | None = None,
    schedule_id: int | None = None,
    since: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs matching every filter given, newest first."""
    query = select(Run, Authorization.user_id).join(
        Authorization, Authorization.id == Run.authorization_id
    )
    if statuses:
        query = query.where(Run.status.in_([s.value for s in statuses]))
    if app_id is not None:
        query = query.where(Run.app_id == check_id(app_id, "app id"))
    if user_id is not None:
        query = query.where(Authorization.user_id == user_id)
    if schedule_id is not None:
        query = query.where(Run.schedule_id == check_id(schedule_id, "schedule id"))
    if since is not None:
        query = query.where(Run.queued_at >= since)
    query = query.order_by(Run.id.desc()).limit(limit).offset(offset)
    return [run_row(run, user) for run, user in session.execute(query).all()]


def run_row(run: Run, user_id: str | None = None) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "app_id": run.app_id,
        "user_id": user_id,
        "schedule_id": run.schedule_id,
        "categories": run.categories,
        "attempts": run.attempts,
        "records": run.records,
        "bytes": run.bytes,
        "queued_at": run.queued_at,
        "finished_at": run.finished_at,
        "rerun_of": run.rerun_of,
        "failure_reason": run.failure_reason,
        "last_error": run.last_error,
    }


def grant_state(grant: Authorization, now: datetime | None = None) -> str:
    """``active``, ``revoked …``, ``expired …`` or ``used …`` (single-use grants)."""
    now = now or utcnow()
    if grant.revoked_at is not None and grant.revoked_at <= now:
        why = f": {grant.revoke_reason}" if grant.revoke_reason else ""
        return f"revoked at {grant.revoked_at:%Y-%m-%d %H:%M}{why}"
    if grant.expires_at is not None and grant.expires_at <= now:
        return f"expired at {grant.expires_at:%Y-%m-%d %H:%M}"
    if grant.access == "single" and grant.used_at is not None:
        return f"single-use, used at {grant.used_at:%Y-%m-%d %H:%M} by run {grant.used_by_run_id}"
    return f"active ({grant.access})"


def describe_run(
    session: Session, run_id: int, *, pseudonym_key: bytes | None = None
) -> dict[str, Any]:
    """Everything support needs to understand one run; secrets never included. With the
    pseudonym key, the user is shown with the pseudonym the app knows them by."""
    settings_key = pseudonym_key
    run = session.get(Run, check_id(run_id, "run id"))
    if run is None:
        raise NotFoundError(f"run {run_id} not found")
    app = session.get(App, run.app_id)
    grant = session.get(Authorization, run.authorization_id)
    destination = session.get(Destination, run.destination_id)
    user = session.get(PlatformUser, grant.user_id) if grant is not None else None
    rows = session.scalars(
        select(RunCategory).where(RunCategory.run_id == run.id).order_by(RunCategory.category)
    ).all()
    return {
        "id": run.id,
        "status": run.status,
        "diagnosis": diagnose(run),
        "app": f"{app.id} {app.name} ({app.status})" if app is not None else None,
        "user": _user(settings_key, run.app_id, user) if user is not None else None,
        "grant": f"{grant.id}: {grant_state(grant)}; {grant.categories}" if grant else None,
        "destination": _destination(destination),
        "schedule_id": run.schedule_id,
        "rerun_of": run.rerun_of,
        "attempts": f"{run.attempts} of {run.max_attempts}",
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "failure_reason": run.failure_reason,
        "error": run.last_error,
        # The raw server or driver text behind the error: staff only, never developers.
        "diagnostic": run.error_detail,
        # Every attempt with its start, end, outcome and error (the raw diagnostic included).
        "attempt_history": [asdict(attempt) for attempt in parse_attempts(run.attempt_log)],
        "categories": [
            {
                "category": row.category,
                "status": row.status,
                "records": row.records,
                "bytes": row.bytes,
                "parts": row.parts,
                "positions": _positions(row),
                "sequence": row.sequence,
                "manifest_key": row.manifest_key,
            }
            for row in rows
        ],
    }


def _user(key: bytes | None, app_id: int, user: PlatformUser) -> str:
    shown = f"{user.id} ({user.country})"
    if key is not None:
        shown += f", known to app {app_id} as {pseudonym(key, app_id, user.id)}"
    return shown


def _destination(destination: Destination | None) -> str | None:
    if destination is None:
        return None
    where = destination.endpoint_url or "AWS S3"
    prefix = f"/{destination.prefix}" if destination.prefix else ""
    return f"{destination.id} {destination.name}: s3://{destination.bucket}{prefix} at {where}"


def _positions(row: RunCategory) -> str | None:
    if row.replay_reason is not None:
        return f"full replay ({row.replay_reason}) up to {row.to_position or '?'}"
    if row.from_position is None and row.to_position is None:
        return None
    return f"{row.from_position} .. {row.to_position}"


#: The plain-words reading of each typed failure reason.
_BY_REASON = {
    FailureReason.CONSENT: (
        "the user's grant or the app's approval no longer allows this transfer: nothing more "
        "is sent; see `portability grants show {grant}` and `portability apps show {app}`"
    ),
    FailureReason.DESTINATION_PERMANENT: (
        "the destination refused the delivery: the developer must fix the bucket (policy, "
        "keys, name or region), then retry with `portability runs retry {run}`"
    ),
    FailureReason.DESTINATION_TRANSIENT: (
        "the destination kept failing temporarily (5xx, throttling, timeouts) through every "
        "attempt: check that it is up, then `portability runs retry {run}`"
    ),
    FailureReason.SOURCE: (
        "the platform's change feed could not be read: check the database, then "
        "`portability runs retry {run}`"
    ),
    FailureReason.INTERNAL: (
        "an internal error stopped the run: look for run {run} in the worker log, then "
        "`portability runs retry {run}`"
    ),
}


def diagnose(run: Run) -> str:
    """One line: what happened to the run and what to do about it."""
    status = RunStatus(run.status)
    if status is RunStatus.SUCCEEDED:
        return "delivered: every category's manifest is written"
    if status is RunStatus.CANCELLED and run.failure_reason == FailureReason.CONSENT:
        return _BY_REASON[FailureReason.CONSENT].format(
            run=run.id, grant=run.authorization_id, app=run.app_id
        )
    if status is RunStatus.CANCELLED:
        return f"cancelled ({run.last_error or 'no reason given'}); retry it if it is still wanted"
    if status is RunStatus.QUEUED:
        if run.last_error:
            return f"waiting to retry after a temporary failure ({run.failure_reason})"
        return "waiting for a worker; if it stays queued, check `portability doctor`"
    if status is RunStatus.RUNNING:
        return f"running (attempt {run.attempts} of {run.max_attempts})"
    text = (run.last_error or "").lower()
    if "access denied" in text or "accessdenied" in text:
        return (
            "the destination denied access: the developer must fix the bucket policy or the "
            f"keys, then `portability runs retry {run.id}`"
        )
    if "does not exist" in text and "bucket" in text:
        return (
            "the destination's bucket does not exist: the developer must create it or fix the "
            f"name, then `portability runs retry {run.id}`"
        )
    reason = FailureReason(run.failure_reason or FailureReason.INTERNAL)
    return _BY_REASON[reason].format(run=run.id, grant=run.authorization_id, app=run.app_id)
