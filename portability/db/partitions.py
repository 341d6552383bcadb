"""Monthly partitions of run history on PostgreSQL.

``runs`` is partitioned by range of ``queued_at`` and ``run_categories`` by the same ranges of
``run_queued_at`` (its run's ``queued_at``, set once when the run is written and never
updated), one partition per calendar month in UTC (``runs_2026_12``,
``run_categories_2026_12``), plus a DEFAULT partition of each so that an insert never fails for
want of a month. Migration ``0010`` builds them; ``maintain_run_partitions`` (the scheduler's
retention step) creates the coming months ahead and drops a month once every run in it has
ended before the history cutoff: one ``DETACH`` and ``DROP`` instead of millions of deletes.

Both steps are idempotent and take one transaction-scoped advisory lock, so two schedulers
running them at once wait for each other instead of racing on the catalog. On SQLite (one
table each) every function here is a no-op.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import DBAPIError

__all__ = [
    "MONTHS_AHEAD",
    "PARTITION_KEYS",
    "Month",
    "drop_expired_months",
    "ensure_month_partitions",
    "is_partitioned",
    "link_partitions",
    "maintain_run_partitions",
    "month_partitions",
    "partition_names",
    "unlinked_partitions",
]

log = logging.getLogger("portability.history")

#: Partitioned table -> its partition key column.
PARTITION_KEYS = {"runs": "queued_at", "run_categories": "run_queued_at"}
#: Months created ahead of the current one: a scheduler down for that long still finds them.
MONTHS_AHEAD = 3
#: ``pg_advisory_xact_lock`` key shared by every process maintaining the partitions.
_LOCK = "portability.run_partitions"
#: A month is dropped only if its ``DETACH`` gets its lock this fast; otherwise next time.
_LOCK_TIMEOUT = "5s"
#: Statuses of a run that has not ended (its month cannot go).
_ONGOING = ("queued", "running")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month in UTC: one partition's range ``[start, end)``."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
        return cls(moment.year, moment.month)

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.plus(1).start

    @property
    def suffix(self) -> str:
        return f"{self.year:04d}_{self.month:02d}"

    def partition(self, table: str) -> str:
        return f"{table}_{self.suffix}"


def is_partitioned(conn: Connection) -> bool:
    """Whether ``runs`` is a partitioned table here (PostgreSQL after migration 0010)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text(
            "SELECT c.relkind FROM pg_class c WHERE c.relname = 'runs' "
            "AND c.relnamespace = current_schema()::regnamespace"
        )
    ).scalar_one_or_none()
    return kind == "p"


def partition_names(conn: Connection) -> set[str]:
    """Every partition in the current schema: storage, not tables the models declare (Alembic's
    comparison and the migration tests leave them out)."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(
        conn.scalars(
            text(
                "SELECT relname FROM pg_class WHERE relispartition "
                "AND relkind IN ('r', 'p') AND relnamespace = current_schema()::regnamespace"
            )
        )
    )


def month_partitions(conn: Connection, table: str) -> dict[Month, str]:
    """The monthly partitions of ``table`` (not its DEFAULT), by month."""
    names = conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    found: dict[Month, str] = {}
    pattern = re.compile(rf"^{re.escape(table)}_(\d{{4}})_(\d{{2}})$")
    for name in names:
        match = pattern.match(name)
        if match:
            found[Month(int(match[1]), int(match[2]))] = name
    return found


def ensure_month_partitions(
    conn: Connection, months: list[Month] | set[Month], *, with_keys: bool = True
) -> list[str]:
    """Create the partitions of ``months`` (and the DEFAULT ones) that do not exist yet, in
    the caller's transaction; returns the names created.

    A month is created in both tables or in neither, with its foreign key (``with_keys``):
    ``run_categories_M`` (run_id, run_queued_at) references ``runs_M`` (id, queued_at) ON
    DELETE CASCADE. The key is per month, not between the parents, so that dropping a month
    checks nothing: a key between the parents makes ``DETACH`` scan every other month's
    category rows under its exclusive lock. A row and its run share the key value, so they
    always land in the same month (or both in the DEFAULT partitions).

    A month whose rows already sit in the DEFAULT partition (maintenance did not run for
    months) cannot be created over them: it is left out with a warning, and those runs stay,
    queryable, in the DEFAULT partition.
    """
    _lock(conn)
    created: list[str] = []
    if conn.execute(text("SELECT to_regclass('runs_default')")).scalar() is None:
        for table in PARTITION_KEYS:
            conn.execute(text(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT"))
        if with_keys:
            link_partitions(conn, "default")
        created += [f"{table}_default" for table in PARTITION_KEYS]
    existing = set(month_partitions(conn, "runs"))
    for month in sorted(set(months) - existing):
        bounds = f"FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"
        try:
            with conn.begin_nested():
                for table in PARTITION_KEYS:
                    conn.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS {month.partition(table)} "
                            f"PARTITION OF {table} FOR VALUES {bounds}"
                        )
                    )
                if with_keys:
                    link_partitions(conn, month.suffix)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "23514":  # check_violation
                raise
            log.warning(
                "run history: %s not created: its rows are in the default", month.partition("runs")
            )
            continue
        created += [month.partition(table) for table in PARTITION_KEYS]
    return created


def link_partitions(conn: Connection, suffix: str) -> None:
    """The foreign key of ``run_categories_{suffix}`` to ``runs_{suffix}``."""
    conn.execute(
        text(
            f"ALTER TABLE run_categories_{suffix} ADD CONSTRAINT fk_run_categories_{suffix}_runs "
            f"FOREIGN KEY (run_id, run_queued_at) REFERENCES runs_{suffix} (id, queued_at) "
            "ON DELETE CASCADE"
        )
    )


def unlinked_partitions(conn: Connection) -> list[str]:
    """Suffixes (``2026_12``, ``default``) of category partitions without their key yet."""
    names = conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST('run_categories' AS regclass) AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f')"
        )
    )
    return [name.removeprefix("run_categories_") for name in names]


def maintain_run_partitions(
    engine: Engine,
    *,
    older_than_days: int | None,
    now: datetime | None = None,
    months_ahead: int = MONTHS_AHEAD,
) -> list[Month]:
    """The scheduler's partition step: create this month and the next ``months_ahead``, then,
    if history has a retention, drop the months that expired. Returns the months dropped."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        if not is_partitioned(conn):
            return []
        this = Month.of(now)
        created = ensure_month_partitions(conn, [this.plus(i) for i in range(months_ahead + 1)])
    if created:
        log.info("run history: partitions %s created", ", ".join(created))
    if older_than_days is None:
        return []
    return drop_expired_months(engine, cutoff=now - timedelta(days=older_than_days))


def drop_expired_months(engine: Engine, *, cutoff: datetime) -> list[Month]:
    """Detach and drop each month that ended before ``cutoff`` and whose every run ended
    before it too, one short transaction per month, oldest first.

    A month still holding a queued or running run, or one that finished after the cutoff,
    stays; the batch deletes (``prune_run_history``) thin it. The DEFAULT partition is never
    dropped. A month whose lock is not granted within 5 s is left for the next call.
    """
    with engine.connect() as conn:
        if not is_partitioned(conn):
            return []
        months = sorted(m for m in month_partitions(conn, "runs") if m.end <= cutoff)
    dropped: list[Month] = []
    for month in months:
        try:
            with engine.begin() as conn:
                if _drop_month(conn, month, cutoff):
                    dropped.append(month)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            log.info("run history: %s busy, left for the next step", month.partition("runs"))
            break
    if dropped:
        log.info("run history: months %s dropped", ", ".join(m.partition("runs") for m in dropped))
    return dropped


def _drop_month(conn: Connection, month: Month, cutoff: datetime) -> bool:
    conn.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
    _lock(conn)
    runs = month.partition("runs")
    if conn.execute(text("SELECT to_regclass(:n)"), {"n": runs}).scalar() is None:
        return False  # another scheduler dropped it meanwhile
    # Three probes, each on an index of the partition (status, queued_at / finished_at).
    unfinished = conn.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM {runs} WHERE status IN :ongoing) "
            f"OR EXISTS (SELECT 1 FROM {runs} WHERE finished_at IS NULL) "
            f"OR EXISTS (SELECT 1 FROM {runs} WHERE finished_at >= :cutoff)"
        ).bindparams(bindparam("ongoing", expanding=True)),
        {"ongoing": _ONGOING, "cutoff": cutoff},
    ).scalar_one()
    if unfinished:
        return False
    for table in ("run_categories", "runs"):  # the referencing side first: its key goes
        name = month.partition(table)  # with it, and nothing references runs_M any more
        if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
            conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
            conn.execute(text(f"DROP TABLE {name}"))
    return True


def _lock(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK})
