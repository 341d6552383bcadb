"""What every request needs, built once by ``create_app`` and reached through ``Depends``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, Select
from sqlalchemy.orm import Session, sessionmaker

from portability.api._keycache import KeyCache
from portability.api._ratelimit import RateLimiter, make_limiter
from portability.crypto import CredentialBox
from portability.destinations.s3 import S3Config
from portability.settings import Settings

__all__ = ["ApiContext", "Ctx", "Enqueue", "EnqueueDeliveries", "ProbeDestination"]

log = logging.getLogger("portability.api")

#: Publishes "run N is due" for each id; called only after the runs are committed.
Enqueue = Callable[[Sequence[int]], None]
#: Writes, reads back and deletes a probe object; raises ``DestinationError`` with the reason.
ProbeDestination = Callable[[S3Config], None]
#: Publishes "webhook delivery N is due" for each id; called only after they are committed.
EnqueueDeliveries = Callable[[list[int]], object]


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: CredentialBox
    enqueue: Enqueue
    probe: ProbeDestination
    keys: KeyCache
    #: Autocommit connections for hot lone reads (``read_rows``); the engine itself on SQLite.
    reader: Engine
    #: Publishes "delivery N is due" on the events queue after the commit; None leaves new
    #: webhook deliveries to the dispatcher (within ``events_dispatch_interval_seconds``).
    enqueue_deliveries: EnqueueDeliveries | None = None
    _compiled: dict[int, str] = field(default_factory=dict)
    _limiter: tuple[object, RateLimiter] | None = None

    def limiter(self) -> RateLimiter:
        """The rate limiter of the running event loop (a Redis client is bound to its loop)."""
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            settings = self.settings
            limiter = make_limiter(
                settings.resolved_rate_limit_url,
                settings.api_rate_limit,
                settings.api_rate_limit_window_seconds,
            )
            self._limiter = (loop, limiter)
        return self._limiter[1]

    async def close(self) -> None:
        if self._limiter is not None:
            await self._limiter[1].close()
            self._limiter = None
        if self.reader is not self.engine:
            self.reader.dispose()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an error."""
        with self.sessions() as session, session.begin():
            yield session

    def read_rows(self, statement: Select[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a prebuilt SELECT as one round trip and return its rows as dictionaries.

        On PostgreSQL the statement is compiled once and sent on a raw DB-API connection: the
        hot read skips the SQLAlchemy result machinery (about 40 % of its cost). Values come
        as the driver gives them (timestamps aware, in the session's zone); elsewhere the
        statement runs through SQLAlchemy.
        """
        names = [str(column.key) for column in statement.selected_columns]
        if self.engine.dialect.name != "postgresql":
            with self.engine.connect() as conn:
                return [
                    dict(zip(names, row, strict=True)) for row in conn.execute(statement, params)
                ]
        sql = self._compiled.get(id(statement))
        if sql is None:
            sql = self._compiled[id(statement)] = str(
                statement.compile(dialect=self.engine.dialect)
            )
        connection = self.reader.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        finally:
            connection.close()
        return [dict(zip(names, row, strict=True)) for row in rows]

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def publish(self, run_ids: Sequence[int]) -> None:
        """Enqueue committed runs; a lost publish is repaired by the reconciler, not here."""
        try:
            self.enqueue(run_ids)
        except Exception:
            log.exception("could not enqueue runs %s; the reconciler will", list(run_ids))

    @property
    def publishes_deliveries(self) -> bool:
        return self.enqueue_deliveries is not None

    def publish_deliveries(self, delivery_ids: Sequence[int]) -> None:
        """Publish committed webhook deliveries; a lost publish is the dispatcher's to repeat."""
        if self.enqueue_deliveries is None or not delivery_ids:
            return
        try:
            self.enqueue_deliveries(list(delivery_ids))
        except Exception:
            log.exception(
                "could not publish webhook deliveries %s; the dispatcher will", list(delivery_ids)
            )


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Ctx = Annotated[ApiContext, Depends(_context)]
