"""``portability db``: create and upgrade the schema with Alembic."""

from __future__ import annotations

import typer

from portability.cli._context import load_settings
from portability.db.engine import make_engine
from portability.db.migrate import downgrade, upgrade

group = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@group.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = load_settings()
    engine = make_engine(settings)
    upgrade(engine, revision)
    engine.dispose()
    typer.echo(f"database at {revision}: {_safe(settings.resolved_database_url)}")


@group.command("downgrade")
def downgrade_cmd(revision: str = typer.Argument(..., help="Target revision, e.g. base.")) -> None:
    """Undo migrations down to REVISION (``base`` drops every table)."""
    settings = load_settings()
    engine = make_engine(settings)
    downgrade(engine, revision)
    engine.dispose()
    typer.echo(f"database at {revision}: {_safe(settings.resolved_database_url)}")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(root: typer.Typer) -> None:
    root.add_typer(group, name="db")
