"""``portability schedules``: list, show, pause, resume and run a schedule now."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from portability.audit import record, snapshot
from portability.cli import _context, _retry
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, PAGE, id_argument
from portability.db.models import Schedule
from portability.scheduling import (
    get_schedule,
    pause_schedule,
    resume_schedule,
    run_schedule_now,
)

__all__ = ["register"]

group = typer.Typer(help="Schedules: list, show, pause, resume, run-now.", no_args_is_help=True)

_COLUMNS = [
    "id",
    "app_id",
    "authorization_id",
    "destination_id",
    "categories",
    "cron",
    "timezone",
    "state",
    "next_run_at",
    "last_run_id",
]


def _row(schedule: Schedule) -> dict[str, Any]:
    if schedule.next_run_at is None:
        state = f"disabled: {schedule.disabled_reason}" if schedule.disabled_reason else "done"
    else:
        state = "paused" if schedule.is_paused else "active"
    return {
        "id": schedule.id,
        "app_id": schedule.app_id,
        "authorization_id": schedule.authorization_id,
        "destination_id": schedule.destination_id,
        "categories": schedule.categories,
        "cron": schedule.cron or "once",
        "timezone": schedule.timezone,
        "state": state,
        "next_run_at": schedule.next_run_at,
        "last_run_id": schedule.last_run_id,
        "skipped_runs": schedule.skipped_runs,
        "last_skip_reason": schedule.last_skip_reason,
        "created_at": schedule.created_at,
    }


@group.command("list")
def list_cmd(
    app: int | None = typer.Option(None, "--app", min=1, help="Only this app's schedules."),
    paused: bool = typer.Option(False, "--paused", help="Only paused schedules."),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Schedules, newest first.

    Example: portability schedules list --app 3
    """
    query = select(Schedule).order_by(Schedule.id.desc()).limit(limit).offset((page - 1) * limit)
    if app is not None:
        query = query.where(Schedule.app_id == app)
    if paused:
        query = query.where(Schedule.is_paused.is_(True))
    with _context.sessions()() as session:
        rows = [_row(s) for s in session.scalars(query).all()]
    print_json(rows) if as_json else print_table(rows, _COLUMNS, empty="no schedules match")


@group.command("show")
def show_cmd(schedule_id: int = id_argument("schedule"), as_json: bool = JSON) -> None:
    """One schedule.

    Example: portability schedules show 12
    """
    with _context.sessions()() as session:
        row = _row(get_schedule(session, schedule_id))
    print_json(row) if as_json else print_record(row, title=f"schedule {schedule_id}")


def _change(schedule_id: int, command: str, change: Any) -> None:
    with _context.sessions().begin() as session:
        before = snapshot(get_schedule(session, schedule_id))
        after = change(session, schedule_id)
        record(
            session,
            actor=_context.STATE.who(),
            command=f"schedules {command}",
            object_type="schedule",
            object_id=schedule_id,
            before=before,
            after=snapshot(after),
        )


@group.command("pause")
def pause_cmd(schedule_id: int = id_argument("schedule")) -> None:
    """Stop a schedule from running until it is resumed.

    Example: portability schedules pause 12
    """
    _change(schedule_id, "pause", pause_schedule)
    print(f"schedule {schedule_id} paused")


@group.command("resume")
def resume_cmd(schedule_id: int = id_argument("schedule")) -> None:
    """Let a paused schedule run again (a missed fire runs once, at the next tick).

    Example: portability schedules resume 12
    """
    _change(schedule_id, "resume", resume_schedule)
    print(f"schedule {schedule_id} resumed")


@group.command("run-now")
def run_now_cmd(
    schedule_id: int = id_argument("schedule"),
    enqueue: bool = typer.Option(True, help="Send the run to the workers now."),
) -> None:
    """Create a run of the schedule now, outside its cron.

    Example: portability schedules run-now 12
    """
    settings = _context.load_settings()
    with _context.sessions().begin() as session:
        run = run_schedule_now(
            session,
            schedule_id,
            eligible_countries=settings.eligible_countries,
            max_attempts=settings.run_max_attempts,
        )
        record(
            session,
            actor=_context.STATE.who(),
            command="schedules run-now",
            object_type="schedule",
            object_id=schedule_id,
            before=None,
            after={"run_id": run.id},
        )
        run_id = run.id
    if enqueue:
        _retry.send([run_id])
    print(f"schedule {schedule_id}: run {run_id} queued")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="schedules")
