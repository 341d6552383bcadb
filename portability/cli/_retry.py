"""``portability runs retry``: one or many failed runs, refused with the reason when their
grant no longer allows it, each retry audited, enqueued only after the commit.

When the broker is down the new runs are already committed: they stay ``queued`` and the
reconciler sends them; the command says so and exits 1, and a second retry is refused
("already retried"), so an outage never leaves a duplicate behind.
"""

from __future__ import annotations

import sys

import typer
from rich.progress import Progress
from sqlalchemy.orm import Session

from portability.audit import record, snapshot
from portability.cli import _context
from portability.cli._errors import EXIT_FAILED
from portability.cli._output import print_json, print_table
from portability.cli._params import JSON, parse_since, since_option
from portability.db.base import check_id
from portability.db.engine import transaction
from portability.db.models import Run
from portability.errors import BrokerUnavailableError, PortabilityError
from portability.retries import failed_runs, rerun, why_not_retry
from portability.runs import mark_enqueued

__all__ = ["register", "send"]


def retry_cmd(
    run_ids: list[int] = typer.Argument(None, help="Run ids to retry.", show_default=False),
    failed: bool = typer.Option(False, "--failed", help="Every failed run not yet retried."),
    app: int | None = typer.Option(None, "--app", min=1, help="With --failed: only this app."),
    since: str | None = since_option(),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be retried; change nothing."
    ),
    enqueue: bool = typer.Option(True, help="Send the new runs to the workers now."),
    as_json: bool = JSON,
) -> None:
    """Retry failed or cancelled runs; each continues from its stream's position.

    Examples: portability runs retry 42 43 ; portability runs retry --failed --since 24h --dry-run
    """
    if bool(run_ids) == failed:
        raise typer.BadParameter("give run ids or --failed, not both and not neither")
    if not failed and (app is not None or since is not None):
        raise typer.BadParameter("--app and --since only go with --failed")
    settings = _context.load_settings()
    sessions = _context.sessions()
    with sessions() as session:
        if failed:
            candidates = failed_runs(
                session,
                eligible_countries=settings.eligible_countries,
                app_id=app,
                since=parse_since(since),
            )
            targets = [c.run_id for c in candidates if c.refusal is None]
            refused = {c.run_id: c.refusal for c in candidates if c.refusal is not None}
        else:
            targets, refused = list(dict.fromkeys(run_ids)), {}
            if dry_run:
                refused = _refusals(session, targets, settings.eligible_countries)
                targets = [r for r in targets if r not in refused]
    if dry_run:
        rows = [{"run": r, "action": "retry"} for r in targets]
        rows += [{"run": r, "action": f"refused: {why}"} for r, why in refused.items()]
        print_json(rows) if as_json else print_table(
            rows, ["run", "action"], empty="nothing to retry"
        )
        return
    if not failed and len(targets) == 1:
        created = {targets[0]: _retry_one(targets[0])}  # its error, if any, is the command's
        errors: dict[int, str] = {}
    else:
        created, errors = _retry_each(targets, show_progress=len(targets) > 1 and not as_json)
        errors.update(refused)
    rows = [{"run": old, "retry": new, "result": "queued"} for old, new in created.items()]
    rows += [
        {"run": old, "retry": None, "result": f"refused: {why}"} for old, why in errors.items()
    ]
    print_json(rows) if as_json else print_table(
        rows, ["run", "retry", "result"], empty="nothing to retry"
    )
    if enqueue and created:
        send(list(created.values()))
    if errors:
        raise typer.Exit(EXIT_FAILED)


def _refusals(session: Session, run_ids: list[int], eligible: frozenset[str]) -> dict[int, str]:
    """Why each of ``run_ids`` would be refused, for ``--dry-run``."""
    refused: dict[int, str] = {}
    for run_id in run_ids:
        run = session.get(Run, check_id(run_id, "run id"))
        why = (
            f"run {run_id} not found"
            if run is None
            else why_not_retry(session, run, eligible_countries=eligible)
        )
        if why is not None:
            refused[run_id] = why
    return refused


def _retry_each(
    targets: list[int], *, show_progress: bool
) -> tuple[dict[int, int], dict[int, str]]:
    """Each retry in its own transaction; refusals are collected, not raised."""
    created: dict[int, int] = {}
    errors: dict[int, str] = {}
    with Progress(transient=True, disable=not show_progress) as progress:
        task = progress.add_task("retrying", total=len(targets))
        for run_id in targets:
            try:
                created[run_id] = _retry_one(run_id)
            except PortabilityError as exc:
                errors[run_id] = str(exc)
            progress.advance(task)
    return created, errors


def _retry_one(run_id: int) -> int:
    """Retry ``run_id`` with its audit entry, in one transaction; the new run's id."""
    settings = _context.load_settings()
    with transaction(_context.sessions()) as session:
        before = snapshot(session.get(Run, run_id))
        new = rerun(session, run_id, eligible_countries=settings.eligible_countries)
        record(
            session,
            actor=_context.STATE.who(),
            command="runs retry",
            object_type="run",
            object_id=run_id,
            before=before,
            after={**(before or {}), "retried_as": new.id},
        )
        return new.id


def send(run_ids: list[int]) -> None:
    """Enqueue committed runs; with the broker down, say they wait for the reconciler."""
    try:
        _context.enqueuer()(run_ids)
    except BrokerUnavailableError as exc:
        after = _context.load_settings().reconcile_after_seconds
        ids = ", ".join(str(r) for r in run_ids)
        print(
            f"error: run(s) {ids} are queued but could not be sent: {exc}. They stay queued "
            f"and the reconciler sends them about {after} s after the broker is back; "
            "do not retry them again",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_FAILED) from None
    with transaction(_context.sessions()) as session:
        mark_enqueued(session, run_ids)


def register(group: typer.Typer) -> None:
    group.command("retry")(retry_cmd)
    group.command("rerun", hidden=True)(retry_cmd)  # the old name, kept for scripts
