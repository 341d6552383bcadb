"""``portability events``: an app's events and webhook deliveries, for support.

Staff see what an app was told (the payloads as sent, with pseudonyms), how each delivery
went, and can deliver an event again (same ``webhook-id``: receivers deduplicate on it).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import typer

from portability import webhooks
from portability.cli._context import load_settings
from portability.db.engine import make_engine, make_session_factory

group = typer.Typer(
    help="Events and webhook deliveries of an app: list, show, deliveries, redeliver.",
    no_args_is_help=True,
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _row(view: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in dataclasses.asdict(view).items()}


@group.command("list")
def list_cmd(
    app_id: int = typer.Option(..., "--app", min=1, help="The app whose events to list."),
    event_type: str | None = typer.Option(None, "--type", help="Only this type."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The app's latest events, newest first.

    Example: portability events list --app 3 --type run.failed
    """
    settings = load_settings()
    with make_session_factory(make_engine(settings))() as session:
        views = webhooks.list_events(
            session,
            app_id,
            settings.resolved_pseudonym_key(),
            event_type=event_type,
            limit=limit,
        )
    if as_json:
        typer.echo(json.dumps([_row(v) for v in views], indent=2))
        return
    if not views:
        typer.echo("no events")
    for view in views:
        typer.echo(f"{view.id}  {view.occurred_at.isoformat()}  {view.type}")


@group.command("show")
def show_cmd(
    event_id: str = typer.Argument(..., help="The event id (evt_...)."),
    app_id: int = typer.Option(..., "--app", min=1),
) -> None:
    """One event's payload, as its receivers get it (always JSON)."""
    settings = load_settings()
    with make_session_factory(make_engine(settings))() as session:
        view = webhooks.get_event(session, app_id, event_id, settings.resolved_pseudonym_key())
    typer.echo(json.dumps(_row(view), indent=2))


@group.command("deliveries")
def deliveries_cmd(
    endpoint_id: int = typer.Option(..., "--endpoint", min=1),
    app_id: int = typer.Option(..., "--app", min=1),
    status: str | None = typer.Option(None, "--status", help="pending, succeeded or failed."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """An endpoint's deliveries: status, attempts, last response code, error and timing."""
    with make_session_factory(make_engine(load_settings()))() as session:
        views = webhooks.list_deliveries(session, app_id, endpoint_id, status=status)
    if as_json:
        typer.echo(json.dumps([_row(v) for v in views], indent=2))
        return
    for view in views:
        code = view.last_status_code if view.last_status_code is not None else "-"
        typer.echo(
            f"delivery {view.id}: {view.event_id} {view.event_type:<22} {view.status:<9} "
            f"attempts {view.attempts}  last HTTP {code}  {view.last_error or ''}".rstrip()
        )


@group.command("redeliver")
def redeliver_cmd(
    event_id: str = typer.Argument(..., help="The event id (evt_...)."),
    app_id: int = typer.Option(..., "--app", min=1),
    endpoint_id: int | None = typer.Option(
        None, "--endpoint", min=1, help="Only to this endpoint (default: every one that wants it)."
    ),
) -> None:
    """Deliver an event again, with the same webhook-id.

    Example: portability events redeliver evt_01j... --app 3
    """
    from workers.events import celery_enqueue_deliveries

    settings = load_settings()
    with make_session_factory(make_engine(settings)).begin() as session:
        ids = webhooks.redeliver(session, app_id, event_id, endpoint_id=endpoint_id)
    celery_enqueue_deliveries(settings)(ids)  # after the commit
    typer.echo(
        f"{len(ids)} delivery(ies) of {event_id} queued"
        if ids
        else "no enabled endpoint of the app wants this event"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="events")
