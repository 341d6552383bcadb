"""``portability streams``: see a grant's or a destination's streams, and ask for replays.

A replay makes the stream's next delivery a full replay of the current state (``reset:
true``, reason ``requested``): support's way to heal a consumer's gap that never closes.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import typer

from portability.audit import record
from portability.cli import _context
from portability.cli._output import print_json, print_record
from portability.cli._params import JSON, id_argument
from portability.streams import StreamView, describe_stream, list_streams, request_replay

group = typer.Typer(
    help="Delivery streams (grant, destination, category): list, show, and replay in full.",
    no_args_is_help=True,
)


def _row(view: StreamView) -> dict[str, Any]:
    row = dataclasses.asdict(view)
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
    return row


@group.command("list")
def list_cmd(
    grant: int | None = typer.Option(None, "--grant", min=1, help="Authorization id."),
    destination: int | None = typer.Option(None, "--destination", min=1, help="Destination id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List streams with their position, sequence and last delivery.

    Example: portability streams list --grant 12
    """
    with _context.sessions()() as session:
        views = list_streams(
            session, app_id=None, authorization_id=grant, destination_id=destination
        )
    if as_json:
        typer.echo(json.dumps([_row(v) for v in views], indent=2))
        return
    if not views:
        typer.echo("no streams yet: the first delivery creates them")
    for view in views:
        pending = f"  replay pending ({view.replay_pending})" if view.replay_pending else ""
        last = view.last_delivered_at.isoformat() if view.last_delivered_at else "never"
        typer.echo(
            f"stream {view.id}: grant {view.authorization_id} -> destination "
            f"{view.destination_id} {view.category:<16} manifest {view.sequence:>5}  "
            f"last delivery {last}{pending}"
        )


@group.command("show")
def show_cmd(stream_id: int = id_argument("stream"), as_json: bool = JSON) -> None:
    """One stream: its position, the changes it has not delivered yet, its lease and its
    latest deliveries with their positions and manifests.

    Example: portability streams show 7
    """
    with _context.sessions()() as session:
        view = describe_stream(session, stream_id, app_id=None)
    if as_json:
        print_json(view)
        return
    print_record(view, title=f"stream {view['id']}")


@group.command("replay")
def replay_cmd(
    grant: int | None = typer.Option(None, "--grant", min=1, help="Authorization id."),
    destination: int | None = typer.Option(None, "--destination", min=1, help="Destination id."),
    category: str | None = typer.Option(None, "--category", help="Only this category."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Make the next delivery of the matching streams a full replay of the current state.

    Example: portability streams replay --grant 12 --category posts --yes
    """
    scope = ", ".join(
        f"{name} {value}"
        for name, value in (("grant", grant), ("destination", destination), ("category", category))
        if value is not None
    )
    if not yes and not typer.confirm(f"Replay every stream of {scope or 'nothing'} in full?"):
        typer.echo("nothing changed")
        raise typer.Exit(code=1)
    with _context.sessions().begin() as session:
        ids = request_replay(
            session,
            app_id=None,
            authorization_id=grant,
            destination_id=destination,
            category=category,
        )
        record(
            session,
            actor=_context.STATE.who(),
            command="streams replay",
            object_type="grant" if grant is not None else "destination",
            object_id=grant if grant is not None else destination,
            before=None,
            after={"streams_marked": ids, "category": category},
        )
    typer.echo(
        f"{len(ids)} stream(s) marked for a full replay at their next delivery"
        if ids
        else "no stream has delivered yet: the first delivery is a full replay anyway"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="streams")
