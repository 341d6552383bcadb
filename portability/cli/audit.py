"""``portability audit``: who changed what, when, from what to what."""

from __future__ import annotations

import typer

from portability.audit import entries
from portability.cli import _context
from portability.cli._output import print_json, print_table
from portability.cli._params import JSON, LIMIT, PAGE, parse_since, since_option

__all__ = ["register"]

group = typer.Typer(help="The audit log of state-changing commands.", no_args_is_help=True)


@group.command("list")
def list_cmd(
    object_ref: str | None = typer.Option(
        None, "--object", help="Only this object, as TYPE:ID (run:42, app:3, grant:7)."
    ),
    actor: str | None = typer.Option(None, "--by", help="Only what this actor did."),
    since: str | None = since_option(),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Audit entries, newest first.

    Example: portability audit list --object run:42 --since 7d
    """
    object_type = object_id = None
    if object_ref is not None:
        object_type, sep, object_id = object_ref.partition(":")
        if not sep or not object_type or not object_id:
            raise typer.BadParameter(f"--object {object_ref!r} must be TYPE:ID, e.g. run:42")
    with _context.sessions()() as session:
        rows = [
            {
                "id": e.id,
                "at": e.at,
                "actor": e.actor,
                "command": e.command,
                "object": f"{e.object_type}:{e.object_id}",
                "before": e.before,
                "after": e.after,
                "note": e.note,
            }
            for e in entries(
                session,
                object_type=object_type,
                object_id=object_id,
                actor=actor,
                since=parse_since(since),
                limit=limit,
                offset=(page - 1) * limit,
            )
        ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["change"] = _changed(row["before"], row["after"])
    print_table(
        rows,
        ["id", "at", "actor", "command", "object", "change", "note"],
        empty="no audit entries match",
    )


def _changed(before: object, after: object) -> str:
    """The fields that differ, as ``field: old -> new``."""
    if not isinstance(after, dict):
        return "-"
    if not isinstance(before, dict):
        return ", ".join(
            f"{k}={v}"
            for k, v in after.items()
            if k in {"id", "status", "retried_as", "run_id", "outcome"}
        )
    return ", ".join(f"{k}: {before.get(k)} -> {v}" for k, v in after.items() if before.get(k) != v)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="audit")
