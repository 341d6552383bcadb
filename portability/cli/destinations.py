"""``portability destinations``: developers' buckets, shown without secrets, and tested."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from portability.audit import record
from portability.cli import _context
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, PAGE, id_argument
from portability.db.base import check_id
from portability.db.models import Destination
from portability.errors import NotFoundError

__all__ = ["register"]

group = typer.Typer(help="Destinations: list, show, test.", no_args_is_help=True)

_COLUMNS = ["id", "app_id", "name", "bucket", "prefix", "endpoint_url", "region"]


def _row(destination: Destination) -> dict[str, Any]:
    """Everything but the credentials."""
    return {
        "id": destination.id,
        "app_id": destination.app_id,
        "name": destination.name,
        "bucket": destination.bucket,
        "prefix": destination.prefix,
        "endpoint_url": destination.endpoint_url or "AWS S3",
        "region": destination.region,
        "addressing_style": destination.addressing_style,
        "server_side_encryption": destination.server_side_encryption,
        "compression": destination.compression,
        "created_at": destination.created_at,
    }


@group.command("list")
def list_cmd(
    app: int | None = typer.Option(None, "--app", min=1, help="Only this app's destinations."),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Destinations, newest first.

    Example: portability destinations list --app 3
    """
    query = (
        select(Destination).order_by(Destination.id.desc()).limit(limit).offset((page - 1) * limit)
    )
    if app is not None:
        query = query.where(Destination.app_id == app)
    with _context.sessions()() as session:
        rows = [_row(d) for d in session.scalars(query).all()]
    print_json(rows) if as_json else print_table(rows, _COLUMNS, empty="no destinations match")


@group.command("show")
def show_cmd(destination_id: int = id_argument("destination"), as_json: bool = JSON) -> None:
    """One destination (never its keys).

    Example: portability destinations show 2
    """
    with _context.sessions()() as session:
        destination = session.get(Destination, check_id(destination_id, "destination id"))
        if destination is None:
            raise NotFoundError(f"destination {destination_id} not found")
        row = _row(destination)
    print_json(row) if as_json else print_record(row, title=f"destination {destination_id}")


@group.command("test")
def test_cmd(destination_id: int = id_argument("destination")) -> None:
    """Write, read back and delete a probe object with the destination's own keys; the
    error, if any, says what the developer must fix.

    Example: portability destinations test 2
    """
    runtime = _context.load_runtime()
    try:
        with runtime.sessions() as session:
            row = session.get(Destination, check_id(destination_id, "destination id"))
            if row is None:
                raise NotFoundError(f"destination {destination_id} not found")
            session.expunge(row)
        outcome = "ok"
        try:
            runtime.open_destination(row).probe()
        except Exception as exc:
            outcome = f"failed: {exc}"
            raise
        finally:
            with runtime.sessions.begin() as session:
                record(
                    session,
                    actor=_context.STATE.who(),
                    command="destinations test",
                    object_type="destination",
                    object_id=destination_id,
                    before=None,
                    after={"outcome": outcome[:500]},
                )
    finally:
        runtime.close()
    print(f"destination {destination_id}: write, read back and delete succeeded")


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="destinations")
