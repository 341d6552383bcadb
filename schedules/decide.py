"""What a tick does with one due schedule: create a run, skip this fire, or disable it.

A pure function over the claimed row and ``now``, so every rule is tested without a database:

1. consent first: an app that is not approved, a revoked or expired grant, or a single-use
   grant already used disables the schedule with the reason (the registry disables eagerly
   when a grant is revoked or an app suspended; this is the safety net);
2. a one-time schedule creates its run and is done (``next_run_at`` becomes NULL);
3. a recurring schedule whose previous run is still queued or running skips this fire and
   records why (never two runs of one schedule at once);
4. otherwise a run is created and the schedule advances to its first fire after ``now`` plus
   its jitter: a scheduler that was down for a day creates one catch-up run, not one per
   missed fire (a schedule whose next fire cannot be computed is disabled with the error);
5. an ongoing grant that expires before that next fire ends the schedule after this run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from croniter import CroniterError

from portability.db.models import Access, AppStatus, RunStatus
from portability.errors import ValidationError
from portability.timing import planned_run_at

__all__ = ["Action", "Decision", "DueSchedule", "decide"]

_ACTIVE = frozenset({RunStatus.QUEUED.value, RunStatus.RUNNING.value})


class Action(StrEnum):
    CREATE = "create"
    SKIP = "skip"
    DISABLE = "disable"


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """A claimed schedule with what the rules need from its app, grant and last run."""

    id: int
    app_id: int
    authorization_id: int
    destination_id: int
    categories: str
    cron: str | None
    timezone: str
    next_run_at: datetime
    skipped_runs: int
    last_run_id: int | None
    last_run_status: str | None
    app_status: str
    access: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None
    used_at: datetime | None
    #: The apps the grant and the destination belong to: both must be the schedule's.
    grant_app_id: int
    destination_app_id: int


@dataclass(frozen=True, slots=True)
class Decision:
    """``next_run_at`` is what the schedule's column becomes (None: no further run).

    ``reason`` is the skip reason for SKIP, and the disabled reason for DISABLE or for a
    CREATE that is the schedule's last run because its grant expires first.
    """

    action: Action
    next_run_at: datetime | None
    reason: str | None = None


def decide(due: DueSchedule, now: datetime, *, max_jitter_seconds: int) -> Decision:
    """Apply the rules in the module docstring, in that order."""
    refusal = consent_refusal(due, now)
    if refusal is not None:
        return Decision(Action.DISABLE, None, refusal)
    if due.cron is None:
        return Decision(Action.CREATE, None)
    try:
        upcoming = planned_run_at(
            due.id, due.cron, due.timezone, now, max_jitter_seconds=max_jitter_seconds
        )
    except (ValidationError, CroniterError, ValueError) as exc:
        # A row written around the validators (or a zone gone from tzdata) must not stall
        # every other schedule of the batch: it stops, saying why.
        return Decision(Action.DISABLE, None, f"cannot compute the next run: {exc}")
    if due.last_run_status in _ACTIVE:
        return Decision(
            Action.SKIP,
            upcoming,
            f"run {due.last_run_id} was still {due.last_run_status} at {_when(now)}",
        )
    if due.expires_at is not None and upcoming >= due.expires_at:
        return Decision(
            Action.CREATE,
            None,
            f"authorization {due.authorization_id} expires at {_when(due.expires_at)}, "
            f"before the next run at {_when(upcoming)}",
        )
    return Decision(Action.CREATE, upcoming)


def consent_refusal(due: DueSchedule, now: datetime) -> str | None:
    """Why the grant or app no longer allows a run, or None when it does."""
    if not due.app_id == due.grant_app_id == due.destination_app_id:
        # A row written around the registry: delivering would put one app's user's data in
        # another app's bucket. The engine refuses such a run too; the schedule stops here.
        return (
            f"schedule {due.id} of app {due.app_id} pairs authorization {due.authorization_id} "
            f"of app {due.grant_app_id} with destination {due.destination_id} of app "
            f"{due.destination_app_id}: refused"
        )
    if due.app_status != AppStatus.APPROVED:
        return f"app {due.app_id} is {due.app_status}, not approved"
    if due.revoked_at is not None and due.revoked_at <= now:
        why = f": {due.revoke_reason}" if due.revoke_reason else ""
        return f"authorization {due.authorization_id} revoked at {_when(due.revoked_at)}{why}"
    if due.expires_at is not None and due.expires_at <= now:
        return f"authorization {due.authorization_id} expired at {_when(due.expires_at)}"
    if due.access == Access.SINGLE and due.used_at is not None:
        return (
            f"authorization {due.authorization_id} is single-use and was already used at "
            f"{_when(due.used_at)}"
        )
    return None


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
