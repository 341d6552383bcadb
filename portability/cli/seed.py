"""``portability seed`` and ``portability mutate``: synthetic platform data for demos."""

from __future__ import annotations

import json

import typer

from portability.cli._context import load_settings
from portability.countries import parse_countries
from portability.db.engine import make_engine

__all__ = ["register"]


def seed_cmd(
    users: int = typer.Option(..., "--users", min=1, help="How many users to create."),
    records_per_user: int = typer.Option(
        ..., "--records-per-user", min=1, help="Records per user, the profile included."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed: same seed, same data."),
    countries: str | None = typer.Option(
        None, "--countries", help="Comma-separated ISO codes to draw from (default: mostly EEA)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Fill the platform store with users u000001... and their profile, posts, activity, DMs."""
    from portability.platform.seed import seed as run_seed

    settings = load_settings()
    engine = make_engine(settings)
    try:
        chosen = parse_countries(countries.split(","), "--countries") if countries else None
        report = run_seed(
            engine,
            users=users,
            records_per_user=records_per_user,
            seed=seed,
            countries=chosen,
        )
    finally:
        engine.dispose()
    rate = report.records / report.seconds if report.seconds else 0.0
    summary = {
        "users": len(report.user_ids),
        "first_user": report.user_ids[0],
        "last_user": report.user_ids[-1],
        "records": report.records,
        "per_category": {str(c): n for c, n in report.per_category.items()},
        "eea_users": report.eea_users,
        "seconds": round(report.seconds, 3),
        "records_per_second": round(rate),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    per_category = ", ".join(f"{c} {n:,}" for c, n in report.per_category.items())
    typer.echo(
        f"seeded {len(report.user_ids):,} users ({report.user_ids[0]}..{report.user_ids[-1]}, "
        f"{report.eea_users:,} in the EEA) with {report.records:,} records "
        f"in {report.seconds:.1f}s ({rate:,.0f} records/s)"
    )
    typer.echo(f"  {per_category}")


def mutate_cmd(
    user: str = typer.Option(..., "--user", help="User id, e.g. u000001."),
    updates: int = typer.Option(10, "--updates", min=0, help="Records to edit."),
    deletes: int = typer.Option(0, "--deletes", min=0, help="Records to delete (tombstones)."),
    seed: int = typer.Option(7, "--seed", help="Random seed for which records are picked."),
    categories: str | None = typer.Option(
        None, "--categories", help="Comma-separated categories to touch (default all)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the changed ids as JSON."),
) -> None:
    """Edit and delete some of a user's records, producing new changes to export."""
    from portability.platform.mutate import mutate

    settings = load_settings()
    engine = make_engine(settings)
    try:
        report = mutate(
            engine,
            user_id=user,
            updates=updates,
            deletes=deletes,
            seed=seed,
            categories=categories,
        )
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "user": report.user_id,
                    "updated": {str(c): ids for c, ids in report.updated.items()},
                    "deleted": {str(c): ids for c, ids in report.deleted.items()},
                }
            )
        )
        return
    typer.echo(f"user {report.user_id}: {report.changes} changes")
    for label, table in (("updated", report.updated), ("deleted", report.deleted)):
        for category, ids in table.items():
            shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
            typer.echo(f"  {label} {category}: {shown}")


def register(root: typer.Typer) -> None:
    root.command("seed")(seed_cmd)
    root.command("mutate")(mutate_cmd)
