"""Alembic environment: migrates the database the settings (or the caller) point at."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import portability.platform.tables  # noqa: F401  (registers the platform tables)
from portability.db import models  # noqa: F401
from portability.db.base import Base
from portability.db.engine import make_engine
from portability.db.partitions import partition_names
from portability.settings import Settings

config = context.config


def _run(connection: Connection) -> None:
    partitions = partition_names(connection)  # storage of run history, not model tables
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=lambda name, kind, _parent: not (kind == "table" and name in partitions),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url
    engine = make_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
