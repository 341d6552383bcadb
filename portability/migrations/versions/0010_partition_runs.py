"""runs and run_categories partitioned by month on PostgreSQL; run_categories.run_queued_at

``run_categories`` carries its run's ``queued_at`` (``run_queued_at``) on both backends, so that
on PostgreSQL both tables are partitioned by the same monthly ranges, each month's category
rows referencing that month's runs, and a month of history goes with one ``DROP``
(``portability.db.partitions``). SQLite keeps one table each.

The partitioned tables are built from the live tables (``LIKE``, and the indexes and foreign
keys read back from the catalog), never from a column list, so columns and indexes added by
earlier migrations carry over. Rows are copied in the migration's transaction under an
exclusive lock: plan for the copy's time on a large history (see docs/operations.md).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 11:45:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection, text

import portability.db.base
from portability.db.partitions import (
    MONTHS_AHEAD,
    Month,
    ensure_month_partitions,
    link_partitions,
    unlinked_partitions,
)

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_FK = "fk_run_categories_run_id_runs"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        op.add_column(
            "run_categories",
            sa.Column("run_queued_at", portability.db.base.UTCDateTime(timezone=True)),
        )
        op.execute(
            "UPDATE run_categories SET run_queued_at = "
            "(SELECT queued_at FROM runs WHERE runs.id = run_categories.run_id)"
        )
        with op.batch_alter_table("run_categories") as batch:
            batch.alter_column("run_queued_at", nullable=False)
        return
    conn.execute(text("LOCK TABLE runs, run_categories IN ACCESS EXCLUSIVE MODE"))
    runs_indexes, runs_fks = _indexes(conn, "runs"), _foreign_keys(conn, "runs")
    categories_indexes = _indexes(conn, "run_categories")
    conn.execute(text(f"ALTER TABLE run_categories DROP CONSTRAINT {_RUN_FK}"))
    _set_aside(conn, "runs", runs_indexes)
    _set_aside(conn, "run_categories", categories_indexes)

    conn.execute(
        text(f"CREATE TABLE runs ({_LIKE.format('runs_old')}) PARTITION BY RANGE (queued_at)")
    )
    conn.execute(text("ALTER TABLE runs ADD CONSTRAINT pk_runs PRIMARY KEY (id, queued_at)"))
    conn.execute(
        text(
            f"CREATE TABLE run_categories ({_LIKE.format('run_categories_old')}, "
            "run_queued_at timestamp with time zone NOT NULL) PARTITION BY RANGE (run_queued_at)"
        )
    )
    conn.execute(
        text(
            "ALTER TABLE run_categories ADD CONSTRAINT pk_run_categories "
            "PRIMARY KEY (run_id, run_queued_at, category)"
        )
    )
    ensure_month_partitions(conn, _months_to_hold(conn), with_keys=False)
    conn.execute(text("INSERT INTO runs SELECT * FROM runs_old"))
    conn.execute(
        text(
            "INSERT INTO run_categories SELECT c.*, r.queued_at FROM run_categories_old c "
            "JOIN runs_old r ON r.id = c.run_id"
        )
    )
    _move_sequence(conn, "runs_old", "runs")
    conn.execute(text("DROP TABLE run_categories_old"))
    conn.execute(text("DROP TABLE runs_old"))
    _restore(conn, "runs", runs_indexes, runs_fks)
    _restore(conn, "run_categories", categories_indexes, [])
    for suffix in unlinked_partitions(conn):  # each month's key, checked once over its rows
        link_partitions(conn, suffix)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        with op.batch_alter_table("run_categories") as batch:
            batch.drop_column("run_queued_at")
        return
    conn.execute(text("LOCK TABLE runs, run_categories IN ACCESS EXCLUSIVE MODE"))
    runs_indexes, runs_fks = _indexes(conn, "runs"), _foreign_keys(conn, "runs")
    categories_indexes = _indexes(conn, "run_categories")
    _set_aside(conn, "runs", runs_indexes)
    _set_aside(conn, "run_categories", categories_indexes)

    conn.execute(text(f"CREATE TABLE runs ({_LIKE.format('runs_old')})"))
    conn.execute(text("ALTER TABLE runs ADD CONSTRAINT pk_runs PRIMARY KEY (id)"))
    conn.execute(text(f"CREATE TABLE run_categories ({_LIKE.format('run_categories_old')})"))
    conn.execute(text("ALTER TABLE run_categories DROP COLUMN run_queued_at"))
    conn.execute(
        text(
            "ALTER TABLE run_categories ADD CONSTRAINT pk_run_categories PRIMARY KEY (run_id, category)"
        )
    )
    for table in ("runs", "run_categories"):
        columns = ", ".join(_columns(conn, table))
        conn.execute(text(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table}_old"))
    _move_sequence(conn, "runs_old", "runs")
    conn.execute(text("DROP TABLE run_categories_old"))  # with its partitions and keys
    conn.execute(text("DROP TABLE runs_old"))
    _restore(conn, "runs", runs_indexes, runs_fks)
    _restore(conn, "run_categories", categories_indexes, [])
    conn.execute(
        text(
            f"ALTER TABLE run_categories ADD CONSTRAINT {_RUN_FK} FOREIGN KEY (run_id) "
            "REFERENCES runs (id)"
        )
    )


#: Everything of a table's definition but its indexes and foreign keys (restored by name).
_LIKE = (
    "LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED "
    "INCLUDING STORAGE INCLUDING COMMENTS"
)


def _indexes(conn: Connection, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes other than its primary key."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisprimary"
        ),
        {"t": table},
    )
    return [(name, definition) for name, definition in rows]


def _foreign_keys(conn: Connection, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' AND conparentid = 0"
        ),
        {"t": table},
    )
    return [(name, definition) for name, definition in rows]


def _columns(conn: Connection, table: str) -> list[str]:
    return list(
        conn.scalars(
            text(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = "
                "CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        )
    )


def _set_aside(conn: Connection, table: str, indexes: list[tuple[str, str]]) -> None:
    """Rename ``table`` to ``{table}_old`` and free the names its new self will take."""
    for name, _ in indexes:
        conn.execute(text(f"DROP INDEX {name}"))
    conn.execute(text(f"ALTER TABLE {table} RENAME CONSTRAINT pk_{table} TO pk_{table}_old"))
    conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_old"))


def _restore(
    conn: Connection, table: str, indexes: list[tuple[str, str]], fks: list[tuple[str, str]]
) -> None:
    for _, definition in indexes:  # "CREATE INDEX name ON schema.table ...": the new table
        conn.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))
    for name, definition in fks:
        conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"))


def _move_sequence(conn: Connection, old: str, new: str) -> None:
    """The id sequence must outlive the old table: it becomes the new table's."""
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": old}).scalar()
    if sequence:
        conn.execute(text(f"ALTER SEQUENCE {sequence} OWNED BY {new}.id"))


def _months_to_hold(conn: Connection) -> set[Month]:
    """Every month that has runs, and this month and the next few."""
    this = Month.of(datetime.now(UTC))
    months = {this.plus(i) for i in range(MONTHS_AHEAD + 1)}
    for year, month in conn.execute(
        text(
            "SELECT DISTINCT CAST(extract(year FROM queued_at AT TIME ZONE 'UTC') AS int), "
            "CAST(extract(month FROM queued_at AT TIME ZONE 'UTC') AS int) FROM runs_old"
        )
    ):
        months.add(Month(year, month))
    return months
