"""Everything a process needs to run transfers, built once from settings at an edge.

The CLI, the Celery worker, the scheduler and the demo each build one ``Runtime`` and pass it
down; nothing here is created on import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from portability.crypto import CredentialBox
from portability.db.engine import make_engine, make_session_factory
from portability.db.models import Destination as DestinationRow
from portability.destinations.base import Destination
from portability.metrics import Metrics
from portability.settings import Settings
from portability.sources.base import Source

__all__ = ["Runtime"]

DestinationFactory = Callable[[DestinationRow], Destination]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: CredentialBox
    source: Source
    open_destination: DestinationFactory = field(repr=False)
    #: This process's series (in a Celery pool process, written to the multiprocess folder).
    metrics: Metrics = field(default_factory=Metrics, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        source: Source | None = None,
        open_destination: DestinationFactory | None = None,
    ) -> Runtime:
        """Build the default runtime: the built-in SQL change feed and S3 destinations."""
        from portability.destinations.s3 import S3Destination
        from portability.sources.sql import SqlChangeFeed

        engine = make_engine(settings)
        box = CredentialBox(settings.resolved_encryption_keys())

        opened: dict[tuple[object, ...], Destination] = {}

        def _open(row: DestinationRow) -> Destination:
            # One client per destination version for the process's life: boto3 clients are
            # thread-safe and keep their connection pool warm between runs.
            key = (
                row.id,
                row.credentials_encrypted,
                row.endpoint_url,
                row.bucket,
                row.region,
                row.addressing_style,
                row.server_side_encryption,
            )
            if key not in opened:
                if len(opened) >= 256:
                    opened.clear()
                opened[key] = S3Destination.from_row(row, box, settings)
            return opened[key]

        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            box=box,
            source=source or SqlChangeFeed(engine),
            open_destination=open_destination or _open,
        )

    @cached_property
    def autocommit(self) -> Engine:
        """The same pool in autocommit mode, for lone reads: one round trip, no transaction.

        PostgreSQL only: switching a pysqlite connection's isolation level back and forth would
        change how it begins transactions, which ``make_engine`` sets up once; an embedded
        SQLite read just runs in a short transaction.
        """
        if self.engine.dialect.name == "sqlite":
            return self.engine
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def close(self) -> None:
        self.engine.dispose()
