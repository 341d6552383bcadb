"""``portability apps``: review developers' apps. Only approved apps receive data."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from portability.audit import entries
from portability.cli import _context
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, PAGE, id_argument
from portability.db.base import check_id
from portability.db.models import App, AppStatus
from portability.errors import NotFoundError
from portability.review import review_app

__all__ = ["register"]

group = typer.Typer(
    help="Apps: list, show, approve, reject, suspend (with the reviewer's note).",
    no_args_is_help=True,
)

_COLUMNS = ["id", "name", "status", "contact_email", "created_at", "status_changed_at"]


def _row(app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "status": app.status,
        "contact_email": app.contact_email,
        "use_case": app.use_case,
        "created_at": app.created_at,
        "status_changed_at": app.status_changed_at,
    }


@group.command("list")
def list_cmd(
    status: AppStatus | None = typer.Option(None, "--status", case_sensitive=False),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Apps, newest first.

    Example: portability apps list --status pending
    """
    query = select(App).order_by(App.id.desc()).limit(limit).offset((page - 1) * limit)
    if status is not None:
        query = query.where(App.status == status.value)
    with _context.sessions()() as session:
        rows = [_row(a) for a in session.scalars(query).all()]
    print_json(rows) if as_json else print_table(rows, _COLUMNS, empty="no apps match")


@group.command("show")
def show_cmd(app_id: int = id_argument("app"), as_json: bool = JSON) -> None:
    """One app with its review history.

    Example: portability apps show 3
    """
    with _context.sessions()() as session:
        app = session.get(App, check_id(app_id, "app id"))
        if app is None:
            raise NotFoundError(f"app {app_id} not found")
        row = _row(app)
        row["reviews"] = [
            {"at": e.at, "actor": e.actor, "command": e.command, "note": e.note}
            for e in entries(session, object_type="app", object_id=app_id, limit=20)
        ]
    print_json(row) if as_json else print_record(row, title=f"app {app_id}")


def _decide(app_id: int, decision: AppStatus, note: str | None) -> None:
    with _context.sessions().begin() as session:
        app = review_app(
            session,
            app_id,
            decision,
            actor=_context.STATE.who(),
            note=note,
            command=f"apps {_VERBS[decision]}",
        )
        name = app.name
    print(f"app {app_id} ({name}) is {decision.value}")


_VERBS = {
    AppStatus.APPROVED: "approve",
    AppStatus.REJECTED: "reject",
    AppStatus.SUSPENDED: "suspend",
}
_NOTE = typer.Option(None, "--note", help="The reviewer's note, recorded in the audit log.")


@group.command("approve")
def approve_cmd(app_id: int = id_argument("app"), note: str | None = _NOTE) -> None:
    """Approve an app: from now on it may receive data.

    Example: portability apps approve 3 --note "use case checked"
    """
    _decide(app_id, AppStatus.APPROVED, note)


@group.command("reject")
def reject_cmd(app_id: int = id_argument("app"), note: str | None = _NOTE) -> None:
    """Reject an app (a note saying why is required).

    Example: portability apps reject 3 --note "use case is advertising"
    """
    _decide(app_id, AppStatus.REJECTED, note)


@group.command("suspend")
def suspend_cmd(app_id: int = id_argument("app"), note: str | None = _NOTE) -> None:
    """Suspend an app: its schedules are disabled and its running exports stop at their
    next consent check (a note is required).

    Example: portability apps suspend 3 --note "abuse report #123"
    """
    _decide(app_id, AppStatus.SUSPENDED, note)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="apps")
