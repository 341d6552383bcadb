"""Run Alembic migrations programmatically (CLI, tests, demo) and read where a schema stands."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from portability.errors import ValidationError

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "known_revisions",
    "upgrade",
]

_INI = Path(__file__).resolve().parent.parent / "migrations" / "alembic.ini"
#: Targets Alembic understands besides a revision id.
_KEYWORDS = ("head", "heads", "base")


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(_INI))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` on the engine's database (its search_path on PostgreSQL).

    An unknown ``revision`` is a ``ValidationError`` listing the known ones, checked before
    the database is touched.
    """
    _check_target(revision)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _check_target(revision)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def known_revisions() -> list[str]:
    """Every revision id of the migration scripts, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _check_target(revision: str) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    if revision in _KEYWORDS or (revision.lstrip("+-").isdigit() and revision[:1] in "+-"):
        return
    try:
        found = script.get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise ValidationError(
            f"revision {revision!r} is unknown: use head, base or one of "
            f"{', '.join(known_revisions())}"
        )
