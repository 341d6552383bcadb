"""``portability health``: liveness checks for compose and orchestrators.

``worker`` and ``scheduler`` read a heartbeat file's age (``portability.health``): no broker
round trip, no database query, so a check never adds load to a struggling dependency. Exit 0
when fresh, 1 when stale or missing, with one line saying which.
"""

from __future__ import annotations

import typer

from portability.cli._context import load_settings

__all__ = ["EXIT_STALE", "register"]

EXIT_STALE = 1

group = typer.Typer(help="Liveness checks from heartbeat files.", no_args_is_help=True)


def _check(kind: str, max_age: float) -> None:
    from portability.health import Heartbeat, heartbeat_age

    age = heartbeat_age(Heartbeat(load_settings().resolved_health_dir, kind))
    fresh = age.is_fresh(max_age)
    typer.echo(f"{kind} {'alive' if fresh else 'stale'}: {age.describe()} (max {max_age:g}s)")
    if not fresh:
        raise typer.Exit(EXIT_STALE)


@group.command("worker")
def worker_cmd(
    max_age: float = typer.Option(
        60.0, "--max-age", min=1, help="Seconds a heartbeat stays fresh."
    ),
) -> None:
    """Exit 1 unless this host's worker touched its heartbeat within --max-age seconds."""
    _check("worker", max_age)


@group.command("scheduler")
def scheduler_cmd(
    max_age: float = typer.Option(
        60.0, "--max-age", min=1, help="Seconds a heartbeat stays fresh."
    ),
) -> None:
    """Exit 1 unless beat or the scheduler loop ticked within --max-age seconds."""
    _check("scheduler", max_age)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="health")
