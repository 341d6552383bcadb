"""Alembic migrations go up, down and up again, and leave the schema the models describe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import portability.platform.tables  # noqa: F401  (registers the platform tables)
from portability.db import models  # noqa: F401
from portability.db.base import Base
from portability.db.engine import make_engine
from portability.db.migrate import downgrade, upgrade
from portability.db.partitions import partition_names
from tests.fixtures.db import PG_HOST, PG_PORT, create_pg_schema, drop_pg_schema, pg_schema_url
from tests.fixtures.services import require_service

EXPECTED_TABLES = {table.name for table in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (not the session's migrated one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    schema = create_pg_schema("mig")
    try:
        yield pg_schema_url(schema)
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    """The tables, without the monthly partitions of run history (storage, not models)."""
    with engine.connect() as conn:
        partitions = partition_names(conn)
    return set(inspect(engine).get_table_names()) - {"alembic_version"} - partitions


def schema_drift(engine: Engine) -> list[object]:
    """What autogenerate would change to make the database match the models."""
    with engine.connect() as conn:
        partitions = partition_names(conn)
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _: not (kind == "table" and name in partitions)
            },
        )
        diffs = compare_metadata(context, Base.metadata)
    # platform_changes.txid is NOT NULL on PostgreSQL on purpose (set by a column default the
    # model cannot express); the model keeps it nullable so SQLite inserts can fill it after.
    expected = ("modify_nullable", None, "platform_changes", "txid")
    diffs = [d for d in diffs if not (isinstance(d, list) and tuple(d[0][:4]) == expected)]
    if engine.dialect.name == "postgresql":
        diffs = [d for d in diffs if not _is_partitioned_run_key(d)]
    return diffs


def _is_partitioned_run_key(diff: object) -> bool:
    """On PostgreSQL each month's run_categories partition references that month's runs
    partition by (run_id, run_queued_at) -> (id, queued_at) (migration 0010, so that a month
    drops without a check over every other month); the parents carry no key between them.
    The model declares run_id -> runs.id, true on SQLite, so that the mapper keeps one
    identity. Only that key is let through."""
    if not (isinstance(diff, tuple) and diff[0] == "add_fk"):
        return False
    key = diff[1]
    return (
        key.table.name == "run_categories"
        and [c.name for c in key.columns] == ["run_id"]
        and key.referred_table.name == "runs"
    )


def test_upgrade_creates_every_table_the_models_declare(empty_engine: Engine) -> None:
    upgrade(empty_engine)

    assert tables(empty_engine) == EXPECTED_TABLES
    assert schema_drift(empty_engine) == []


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    downgrade(empty_engine, "base")
    assert tables(empty_engine) == set()

    upgrade(empty_engine)
    assert tables(empty_engine) == EXPECTED_TABLES
    assert schema_drift(empty_engine) == []


@pytest.mark.services
def test_postgres_change_feed_txid_defaults_to_the_writing_transaction(
    pg_engine: Engine,
) -> None:
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO platform_changes (user_id, category, record_id, op, changed_at, line)"
            " VALUES ('u1', 'posts', 'p1', 'upsert', now(), '{}')"
        )
        txid = conn.exec_driver_sql("SELECT pg_current_xact_id()::text::bigint").scalar_one()
        stored = conn.exec_driver_sql("SELECT txid FROM platform_changes").scalar_one()
    assert stored == txid


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("portability")
    if script.exists():
        return [str(script)]
    found = shutil.which("portability")
    assert found, "the portability console script is not installed"
    return [found]


def test_cli_db_upgrade_migrates_the_database_named_in_the_environment(
    empty_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PORTABILITY_DATABASE_URL": empty_url,
        "PORTABILITY_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [*_cli(), "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    engine = make_engine(empty_url)
    try:
        assert tables(engine) == EXPECTED_TABLES
    finally:
        engine.dispose()
