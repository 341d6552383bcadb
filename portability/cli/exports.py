"""``portability exports``: users' own exports ("download your data"), for support.

Support lists and inspects a user's exports, requests one on a user's behalf and cancels one
in progress; every change is audited in its own transaction. Writes go through
``portability.user_exports.lifecycle``, which holds the guards.
"""

from __future__ import annotations

from typing import Any

import typer

from portability.audit import record, snapshot
from portability.cli import _context
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, id_argument
from portability.db.base import utcnow
from portability.user_exports import ExportStatus, RequestedBy, UserExport, lifecycle

__all__ = ["register"]

group = typer.Typer(
    help="Users' own exports (download your data): list, show, request, cancel.",
    no_args_is_help=True,
)

_COLUMNS = [
    "id",
    "user_id",
    "status",
    "categories",
    "format",
    "progress",
    "size_bytes",
    "volumes",
    "requested_by",
    "created_at",
    "expires_at",
    "error",
]


def _row(row: UserExport) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "status": row.status,
        "categories": [c.value for c in row.category_list],
        "format": row.format,
        "progress": row.progress,
        "records": row.records,
        "size_bytes": row.size_bytes,
        "volumes": row.volumes,
        "object_keys": row.object_keys or [],
        "sha256s": row.sha256s or [],
        "requested_by": row.requested_by,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "expires_at": row.expires_at,
        "error": row.error,
    }


@group.command("list")
def list_cmd(
    user: str = typer.Option(..., "--user", help="The platform user whose exports to list."),
    limit: int = LIMIT,
    as_json: bool = JSON,
) -> None:
    """A user's exports, newest first, with status, progress and size.

    Example: portability exports list --user u000042 --json
    """
    with _context.sessions()() as session:
        rows = [_row(r) for r in lifecycle.list_exports(session, user, limit=limit)]
    if as_json:
        print_json(rows)
        return
    print_table(rows, _COLUMNS, empty=f"user {user} has no exports")


@group.command("show")
def show_cmd(export_id: int = id_argument("export"), as_json: bool = JSON) -> None:
    """One export: status, progress, volumes, their keys and SHA-256s, the error.

    Example: portability exports show 17
    """
    with _context.sessions()() as session:
        row = _row(lifecycle.get_export(session, export_id, user_id=None))
    if as_json:
        print_json(row)
        return
    print_record(row, title=f"export {export_id}")


@group.command("request")
def request_cmd(
    user: str = typer.Option(..., "--user", help="The platform user to export."),
    categories: str = typer.Option("all", "--categories", help="Comma-separated, or all."),
    fmt: str = typer.Option("json", "--format", help="json or text (readable HTML pages)."),
    as_json: bool = JSON,
) -> None:
    """Request an export on a user's behalf (the same guards as the user's own request).

    Example: portability exports request --user u000042 --categories posts,direct_messages
    """
    actor = _context.STATE.who()
    settings = _context.load_settings()
    with _context.sessions().begin() as session:
        row = lifecycle.request_export(
            session,
            settings,
            user_id=user,
            categories=categories,
            fmt=fmt,
            requested_by=RequestedBy.SUPPORT.value,
            now=utcnow(),
        )
        record(
            session,
            actor=actor,
            command="exports request",
            object_type="user_export",
            object_id=row.id,
            before=None,
            after=snapshot(row),
        )
        view = _row(row)
    if as_json:
        print_json(view)
        return
    print(f"export {view['id']} of user {user} queued")


@group.command("cancel")
def cancel_cmd(export_id: int = id_argument("export")) -> None:
    """Cancel a queued or running export; a running one stops at its next progress report
    and what it had written is deleted.

    Example: portability exports cancel 17
    """
    actor = _context.STATE.who()
    with _context.sessions().begin() as session:
        row = lifecycle.get_export(session, export_id, user_id=None)
        before = snapshot(row)
        if not lifecycle.cancel_export(session, export_id, user_id=None, now=utcnow()):
            raise lifecycle.not_cancellable(row)
        session.refresh(row)
        record(
            session,
            actor=actor,
            command="exports cancel",
            object_type="user_export",
            object_id=export_id,
            before=before,
            after=snapshot(row),
        )
    print(f"export {export_id} {ExportStatus.CANCELLED.value}")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="exports")
