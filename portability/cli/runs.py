"""``portability runs``: create, list, show and re-run transfers.

Creating or re-running a run enqueues it through the Celery app in ``workers`` -- imported
here lazily, at the command edge, because a command must reach the broker; the rest of
``portability`` never imports Celery.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

import typer
from sqlalchemy import select

from portability.cli._context import load_settings
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import Run
from portability.runs import RunView, create_run, get_run, rerun, run_diagnostic

group = typer.Typer(help="Transfer runs: create, list, show, re-run.", no_args_is_help=True)


def _sessions() -> Any:
    return make_session_factory(make_engine(load_settings()))


def _enqueue(run_id: int) -> None:
    from workers.app import enqueue_run

    enqueue_run(run_id)


def _json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        return str(obj)

    return json.dumps(value, default=default, indent=2)


def _print_view(view: RunView, as_json: bool) -> None:
    if as_json:
        typer.echo(_json(dataclasses.asdict(view)))
        return
    typer.echo(f"run {view.id}: {view.status.value} (attempts {view.attempts})")
    typer.echo(f"  categories : {', '.join(view.categories)}")
    typer.echo(f"  records    : {view.records:,}   bytes: {view.bytes:,}")
    if view.last_error:
        typer.echo(f"  last error : [{view.failure_reason or '-'}] {view.last_error}")
    for category, result in sorted(view.per_category.items()):
        typer.echo(
            f"  {category:<16} {result['status']:<8} {result['records']:>9,} records "
            f"{result['bytes']:>11,} bytes  {result['manifest_key'] or ''}"
        )


@group.command("create")
def create_cmd(
    authorization: int = typer.Option(..., help="Authorization (grant) id."),
    destination: int = typer.Option(..., help="Destination id."),
    categories: str = typer.Option("all", help="Comma-separated categories, or 'all'."),
    enqueue: bool = typer.Option(True, help="Send it to the workers now."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a one-time transfer run (and enqueue it)."""
    sessions = _sessions()
    with sessions.begin() as session:
        if categories == "all":
            from portability.db.models import Authorization

            auth = session.get(Authorization, authorization)
            categories = auth.categories if auth is not None else categories
        run_id = create_run(
            session,
            authorization_id=authorization,
            destination_id=destination,
            categories=categories,
            max_attempts=load_settings().run_max_attempts,
        ).id
    if enqueue:
        _enqueue(run_id)
    with sessions() as session:
        _print_view(get_run(session, run_id), as_json)


@group.command("list")
def list_cmd(
    status: str | None = typer.Option(None, help="Only runs in this status."),
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most recent runs, newest first."""
    with _sessions()() as session:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if status:
            query = query.where(Run.status == status)
        rows = session.scalars(query).all()
        items = [
            {
                "id": r.id,
                "status": r.status,
                "schedule_id": r.schedule_id,
                "authorization_id": r.authorization_id,
                "categories": r.categories,
                "attempts": r.attempts,
                "records": r.records,
                "bytes": r.bytes,
                "queued_at": r.queued_at,
                "failure_reason": r.failure_reason,
                "last_error": r.last_error,
            }
            for r in rows
        ]
    if as_json:
        typer.echo(_json(items))
        return
    for item in items:
        error = f"  [{item['failure_reason']}] {item['last_error']}" if item["last_error"] else ""
        typer.echo(
            f"{item['id']:>6} {item['status']:<10} {item['categories']:<40} "
            f"{item['records']:>9,} rec{error}"
        )


@group.command("show")
def show_cmd(run_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """One run with its per-category results, and the staff-only diagnostic of its error."""
    with _sessions()() as session:
        view, detail = get_run(session, run_id), run_diagnostic(session, run_id)
    if as_json:
        typer.echo(_json({**dataclasses.asdict(view), "error_detail": detail}))
        return
    _print_view(view, as_json)
    if detail:
        typer.echo(f"  diagnostic : {detail}")


@group.command("rerun")
def rerun_cmd(
    run_id: int,
    enqueue: bool = typer.Option(True, help="Send it to the workers now."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-run a failed or cancelled run; it continues from the checkpoint."""
    sessions = _sessions()
    with sessions.begin() as session:
        new_id = rerun(session, run_id).id
    if enqueue:
        _enqueue(new_id)
    with sessions() as session:
        _print_view(get_run(session, new_id), as_json)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="runs")
