"""``portability grants``: users' authorizations to apps; revoking stops their transfers."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from portability.audit import record, snapshot
from portability.cli import _context
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, PAGE, id_argument
from portability.db.base import check_id
from portability.db.models import Authorization
from portability.errors import ConflictError, NotFoundError
from portability.registry import revoke_grant
from portability.run_report import grant_state

__all__ = ["register"]

group = typer.Typer(help="Grants (authorizations): list, show, revoke.", no_args_is_help=True)

_COLUMNS = ["id", "user_id", "app_id", "categories", "access", "state", "granted_at"]


def _row(grant: Authorization) -> dict[str, Any]:
    return {
        "id": grant.id,
        "user_id": grant.user_id,
        "app_id": grant.app_id,
        "categories": grant.categories,
        "access": grant.access,
        "state": grant_state(grant),
        "granted_at": grant.granted_at,
        "expires_at": grant.expires_at,
        "revoked_at": grant.revoked_at,
        "revoke_reason": grant.revoke_reason,
        "used_by_run_id": grant.used_by_run_id,
    }


@group.command("list")
def list_cmd(
    app: int | None = typer.Option(None, "--app", min=1, help="Only this app's grants."),
    user: str | None = typer.Option(None, "--user", help="Only this platform user's grants."),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Grants, newest first.

    Example: portability grants list --user u000001
    """
    query = (
        select(Authorization)
        .order_by(Authorization.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    if app is not None:
        query = query.where(Authorization.app_id == app)
    if user is not None:
        query = query.where(Authorization.user_id == user)
    with _context.sessions()() as session:
        rows = [_row(g) for g in session.scalars(query).all()]
    print_json(rows) if as_json else print_table(rows, _COLUMNS, empty="no grants match")


def _get(session: Any, grant_id: int) -> Authorization:
    grant = session.get(Authorization, check_id(grant_id, "authorization id"))
    if grant is None:
        raise NotFoundError(f"authorization {grant_id} not found")
    return grant  # type: ignore[no-any-return]


@group.command("show")
def show_cmd(grant_id: int = id_argument("grant"), as_json: bool = JSON) -> None:
    """One grant and its state.

    Example: portability grants show 7
    """
    with _context.sessions()() as session:
        row = _row(_get(session, grant_id))
    print_json(row) if as_json else print_record(row, title=f"grant {grant_id}")


@group.command("revoke")
def revoke_cmd(
    grant_id: int = id_argument("grant"),
    reason: str = typer.Option(..., "--reason", help="Why; recorded on the grant."),
) -> None:
    """Revoke a grant: its schedules are disabled and running exports stop at their next
    consent check.

    Example: portability grants revoke 7 --reason "user asked support (ticket 123)"
    """
    actor = _context.STATE.who()
    with _context.sessions().begin() as session:
        grant = _get(session, grant_id)
        if grant.revoked_at is not None:
            raise ConflictError(f"authorization {grant_id} is already {grant_state(grant)}")
        before = snapshot(grant)
        grant = revoke_grant(session, grant_id, reason=f"{reason} (revoked by {actor})")
        record(
            session,
            actor=actor,
            command="grants revoke",
            object_type="grant",
            object_id=grant_id,
            before=before,
            after=snapshot(grant),
            note=reason,
        )
    print(f"grant {grant_id} revoked")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="grants")
