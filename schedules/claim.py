"""Claiming due schedules and writing what the tick decided, inside the caller's transaction.

The claim walks the partial index ``ix_schedules_due`` (``next_run_at`` of schedules that are
neither paused nor finished) in ``next_run_at`` order and stops after ``limit`` rows, so its
cost follows the number of due schedules, never the total.

Concurrency: on PostgreSQL the claimed rows are locked ``FOR UPDATE SKIP LOCKED``; another
scheduler skips them, and once this transaction commits they are no longer due (their
``next_run_at`` moved on), so no schedule gets two runs for one fire. On SQLite the engine
begins every transaction with ``BEGIN IMMEDIATE``, which serialises whole ticks instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from portability.db.base import UTCDateTime
from portability.db.models import App, Authorization, Destination, Run, RunStatus, Schedule
from schedules.decide import Action, Decision, DueSchedule
from schedules.disabled import announce_disabled

__all__ = ["claim_due_schedules", "claim_statement", "mark_unsent", "record_decisions"]

_schedules = cast(Table, Schedule.__table__)
_runs = cast(Table, Run.__table__)
_apps = cast(Table, App.__table__)
_grants = cast(Table, Authorization.__table__)
_destinations = cast(Table, Destination.__table__)

#: Written exactly as the index predicate, so both planners match the partial index.
_IN_DUE_INDEX = text("schedules.next_run_at IS NOT NULL AND NOT schedules.is_paused")


def claim_statement(now: datetime, limit: int) -> Select[Any]:
    """The claim: up to ``limit`` schedules due at ``now``, oldest first, locked, joined to
    their app, grant and last run.

    The schedule's own columns come from the locking CTE, so they are the row version that
    was locked, even if another scheduler committed a change after the statement began.
    """
    s = _schedules.c
    due = (
        select(
            s.id,
            s.app_id,
            s.authorization_id,
            s.destination_id,
            s.categories,
            s.cron,
            s.timezone,
            s.next_run_at,
            s.skipped_runs,
            s.last_run_id,
        )
        .where(_IN_DUE_INDEX, s.next_run_at <= now)
        .order_by(s.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    return (  # columns in the order of DueSchedule's fields
        select(
            due,
            _runs.c.status,
            _apps.c.status,
            _grants.c.access,
            _grants.c.expires_at,
            _grants.c.revoked_at,
            _grants.c.revoke_reason,
            _grants.c.used_at,
            _grants.c.app_id,
            _destinations.c.app_id,
        )
        .select_from(due)
        .join(_apps, _apps.c.id == due.c.app_id)
        .join(_grants, _grants.c.id == due.c.authorization_id)
        .join(_destinations, _destinations.c.id == due.c.destination_id)
        .outerjoin(_runs, _runs.c.id == due.c.last_run_id)
    )


def claim_due_schedules(session: Session, now: datetime, limit: int) -> list[DueSchedule]:
    """Lock up to ``limit`` due schedules (see ``claim_statement``) for this transaction."""
    return [DueSchedule(*row) for row in session.execute(claim_statement(now, limit))]


def record_decisions(
    session: Session,
    decided: Sequence[tuple[DueSchedule, Decision]],
    *,
    now: datetime,
    max_attempts: int,
) -> list[int]:
    """Create the runs and move the schedules on; returns the new run ids, ascending.

    A run row matches what ``portability.runs.create_run`` writes: queued, the schedule's
    app, grant, destination and categories, ``max_attempts``, ``queued_at=now``; and
    ``enqueued_at=now``, since the tick sends them right after this commit (saving a second
    write of every run): if that send fails the tick clears it (``mark_unsent``), and if the
    process dies in between, the reconciler re-sends them like any lost message. Runs are
    written by one ``INSERT ... SELECT ... RETURNING`` from the locked schedules and the
    schedules by one statement (PostgreSQL: ``UPDATE ... FROM unnest(arrays)``; SQLite: an
    executemany): a batch costs a few round trips whatever its size.
    """
    created = [due.id for due, decision in decided if decision.action is Action.CREATE]
    run_for = _insert_runs(session, created, now=now, max_attempts=max_attempts)
    if decided:
        rows = [_schedule_values(due, decision, run_for.get(due.id)) for due, decision in decided]
        if session.get_bind().dialect.name == "postgresql":
            _update_schedules_pg(session, rows)
        else:
            _update_schedules(session, rows)
        announce_disabled(session, decided, now)
    return sorted(run_for.values())


def mark_unsent(session: Session, run_ids: Sequence[int]) -> None:
    """Clear ``enqueued_at`` of runs whose enqueue failed, so they show as never sent."""
    if run_ids:
        session.execute(
            update(_runs)
            .where(_id_among(session, _runs.c.id, run_ids))
            .values(enqueued_at=None)
            .execution_options(synchronize_session=False)
        )


def _insert_runs(
    session: Session, schedule_ids: Sequence[int], *, now: datetime, max_attempts: int
) -> dict[int, int]:
    """One queued run per schedule id, copied from the (locked) schedule rows."""
    if not schedule_ids:
        return {}
    source = select(
        _schedules.c.app_id,
        _schedules.c.id,
        _schedules.c.authorization_id,
        _schedules.c.destination_id,
        _schedules.c.categories,
        literal(RunStatus.QUEUED.value, String),
        literal(max_attempts, Integer),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(_id_among(session, _schedules.c.id, schedule_ids))
    columns = [
        "app_id",
        "schedule_id",
        "authorization_id",
        "destination_id",
        "categories",
        "status",
        "max_attempts",
        "queued_at",
        "enqueued_at",
    ]
    returned = session.execute(
        insert(_runs)
        .from_select(columns, source)  # also fills attempts/records/bytes with their defaults
        .returning(_runs.c.schedule_id, _runs.c.id)
    )
    return {schedule_id: run_id for schedule_id, run_id in returned}


def _id_among(session: Session, column: Any, ids: Sequence[int]) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer)))
    return column.in_(list(ids))


def _update_schedules(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(
        update(_schedules)
        .where(_schedules.c.id == bindparam("b_id"))
        .values(
            next_run_at=bindparam("b_next"),
            last_run_id=func.coalesce(bindparam("b_run"), _schedules.c.last_run_id),
            skipped_runs=_schedules.c.skipped_runs + bindparam("b_skips"),
            last_skip_reason=func.coalesce(
                bindparam("b_skip_reason"), _schedules.c.last_skip_reason
            ),
            disabled_reason=func.coalesce(bindparam("b_disabled"), _schedules.c.disabled_reason),
        )
        .execution_options(synchronize_session=False),
        rows,
    )


_UPDATE_FROM_ARRAYS = text(
    """
    UPDATE schedules SET
        next_run_at = v.next_run_at,
        last_run_id = COALESCE(v.run_id, schedules.last_run_id),
        skipped_runs = schedules.skipped_runs + v.skips,
        last_skip_reason = COALESCE(v.skip_reason, schedules.last_skip_reason),
        disabled_reason = COALESCE(v.disabled, schedules.disabled_reason)
    FROM unnest(
        CAST(:ids AS integer[]), CAST(:nexts AS timestamptz[]), CAST(:runs AS integer[]),
        CAST(:skips AS integer[]), CAST(:skip_reasons AS text[]), CAST(:disabled AS text[])
    ) AS v(id, next_run_at, run_id, skips, skip_reason, disabled)
    WHERE schedules.id = v.id
    """
)


def _update_schedules_pg(session: Session, rows: list[dict[str, Any]]) -> None:
    session.execute(
        _UPDATE_FROM_ARRAYS,
        {
            "ids": [row["b_id"] for row in rows],
            "nexts": [row["b_next"] for row in rows],
            "runs": [row["b_run"] for row in rows],
            "skips": [row["b_skips"] for row in rows],
            "skip_reasons": [row["b_skip_reason"] for row in rows],
            "disabled": [row["b_disabled"] for row in rows],
        },
    )


def _schedule_values(due: DueSchedule, decision: Decision, run_id: int | None) -> dict[str, Any]:
    is_skip = decision.action is Action.SKIP
    return {
        "b_id": due.id,
        "b_next": decision.next_run_at,
        "b_run": run_id,
        "b_skips": 1 if is_skip else 0,
        "b_skip_reason": decision.reason if is_skip else None,
        "b_disabled": None if is_skip else decision.reason,
    }
