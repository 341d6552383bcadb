"""``portability runs``: find, explain, retry, cancel and follow transfer runs.

The commands stay thin: reads go through ``portability.run_report``, writes through
``portability.runs`` and ``portability.retries``, and every change is audited in its own
transaction. Runs are enqueued only after that commit, through ``portability.dispatch``.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from portability.audit import record, snapshot
from portability.cli import _context, _retry
from portability.cli._errors import EXIT_FAILED
from portability.cli._logging import configure_logging
from portability.cli._output import print_json, print_record, print_table
from portability.cli._params import JSON, LIMIT, PAGE, id_argument, parse_since, since_option
from portability.db.base import check_id
from portability.db.models import Authorization, Run, RunStatus
from portability.errors import ConflictError, NotFoundError
from portability.run_report import describe_run, list_runs
from portability.runs import cancel_run, create_run

__all__ = ["register"]

group = typer.Typer(
    help="Transfer runs: list, show, retry, cancel, wait, create.", no_args_is_help=True
)

_LIST_COLUMNS = [
    "id",
    "status",
    "app_id",
    "user_id",
    "categories",
    "attempts",
    "records",
    "queued_at",
    "failure_reason",
    "last_error",
]


@group.command("list")
def list_cmd(
    status: list[RunStatus] = typer.Option(
        [], "--status", case_sensitive=False, help="Only runs in this status (repeatable)."
    ),
    app: int | None = typer.Option(None, "--app", min=1, help="Only this app's runs."),
    user: str | None = typer.Option(None, "--user", help="Only this platform user's runs."),
    schedule: int | None = typer.Option(None, "--schedule", min=1, help="Only this schedule."),
    since: str | None = since_option(),
    limit: int = LIMIT,
    page: int = PAGE,
    as_json: bool = JSON,
) -> None:
    """Runs, newest first.

    Example: portability runs list --status failed --since 24h --app 3
    """
    with _context.sessions()() as session:
        rows = list_runs(
            session,
            statuses=status,
            app_id=app,
            user_id=user,
            schedule_id=schedule,
            since=parse_since(since),
            limit=limit,
            offset=(page - 1) * limit,
        )
    if as_json:
        print_json(rows)
        return
    print_table(rows, _LIST_COLUMNS, empty="no runs match")
    if len(rows) == limit:
        print(f"page {page}; more with --page {page + 1}")


@group.command("show")
def show_cmd(run_id: int = id_argument("run"), as_json: bool = JSON) -> None:
    """One run: app, user, grant state, destination, each category, the error and a
    diagnosis in plain words.

    Example: portability runs show 42
    """
    settings = _context.load_settings()
    # The pseudonym is shown when this host holds the key (workers do; a support laptop may not).
    key = settings.resolved_pseudonym_key() if settings.pseudonym_key is not None else None
    with _context.sessions()() as session:
        view = describe_run(session, run_id, pseudonym_key=key)
    if as_json:
        print_json(view)
        return
    print_record(
        {**view, "attempt_history": [_attempt_row(a) for a in view["attempt_history"]]},
        title=f"run {view['id']}",
    )


def _attempt_row(attempt: dict[str, Any]) -> dict[str, Any]:
    """An attempt narrowed to what fits a terminal (``--json`` has the worker and diagnostic)."""

    def moment(value: str | None) -> str | None:
        return value.replace("T", " ")[:19] if value else None

    return {
        "#": attempt["number"],
        "started": moment(attempt["started_at"]),
        "ended": moment(attempt["ended_at"]),
        "outcome": attempt["outcome"] or "running",
        "error": attempt["error"],
    }


@group.command("cancel")
def cancel_cmd(
    run_id: int = id_argument("run"),
    reason: str = typer.Option("cancelled by support", "--reason", help="Recorded on the run."),
) -> None:
    """Cancel a queued or running run; a running export stops at its next lease renewal.

    Example: portability runs cancel 42 --reason "developer asked"
    """
    actor = _context.STATE.who()
    with _context.sessions().begin() as session:
        run = session.get(Run, check_id(run_id, "run id"))
        if run is None:
            raise NotFoundError(f"run {run_id} not found")
        before, status = snapshot(run), run.status
        if not cancel_run(session, run_id, reason=f"{reason} ({actor})"):
            raise ConflictError(
                f"run {run_id} is {status}: only queued or running runs can be cancelled"
            )
        record(
            session,
            actor=actor,
            command="runs cancel",
            object_type="run",
            object_id=run_id,
            before=before,
            after=snapshot(session.get(Run, run_id)),
        )
    print(f"run {run_id} cancelled")


@group.command("wait")
def wait_cmd(
    run_id: int = id_argument("run"),
    timeout: float = typer.Option(3600.0, "--timeout", min=0.1, help="Give up after seconds."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between polls."),
    as_json: bool = JSON,
) -> None:
    """Follow a run until it ends; exit 0 if it succeeded, 1 otherwise.

    Example: portability runs wait 42 --timeout 600
    """
    configure_logging(debug=_context.STATE.debug, long_running=True)
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    sessions = _context.sessions()
    while True:
        with sessions() as session:
            view = describe_run(session, run_id)
        state = (view["status"], view["attempts"], sum(c["records"] for c in view["categories"]))
        if state != last and not as_json:
            print(
                f"run {run_id}: {state[0]}, attempts {state[1]}, {state[2]:,} records", flush=True
            )
        last = state
        if RunStatus(view["status"]).is_final:
            break
        if time.monotonic() > deadline:
            print(f"run {run_id} is still {view['status']} after {timeout:g} s")
            raise typer.Exit(EXIT_FAILED)
        time.sleep(interval)
    if as_json:
        print_json(view)
    else:
        print(f"run {run_id} {view['status']}: {view['diagnosis']}")
    if view["status"] != RunStatus.SUCCEEDED:
        raise typer.Exit(EXIT_FAILED)


@group.command("create")
def create_cmd(
    authorization: int = typer.Option(..., "--authorization", help="Authorization (grant) id."),
    destination: int = typer.Option(..., "--destination", help="Destination id."),
    categories: str = typer.Option("all", help="Comma-separated categories, or 'all'."),
    enqueue: bool = typer.Option(True, help="Send it to the workers now."),
    as_json: bool = JSON,
) -> None:
    """Create a one-time transfer run and enqueue it.

    Example: portability runs create --authorization 7 --destination 2 --categories posts
    """
    actor = _context.STATE.who()
    settings = _context.load_settings()
    with _context.sessions().begin() as session:
        if categories == "all":
            auth = session.get(Authorization, check_id(authorization, "authorization id"))
            categories = auth.categories if auth is not None else categories
        run = create_run(
            session,
            app_id=None,
            authorization_id=authorization,
            destination_id=destination,
            categories=categories,
            max_attempts=settings.run_max_attempts,
        )
        record(
            session,
            actor=actor,
            command="runs create",
            object_type="run",
            object_id=run.id,
            before=None,
            after=snapshot(run),
        )
        run_id = run.id
    if enqueue:
        _retry.send([run_id])
    with _context.sessions()() as session:
        view = describe_run(session, run_id)
    print_json(view) if as_json else print_record(view, title=f"run {run_id}")


def register(root: typer.Typer) -> None:
    _retry.register(group)
    root.add_typer(group, name="runs")
