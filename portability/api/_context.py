"""What every request needs, built once by ``create_app`` and reached through ``Depends``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from portability.api._keycache import KeyCache
from portability.api._ratelimit import RateLimiter, make_limiter
from portability.crypto import CredentialBox
from portability.destinations.s3 import S3Config
from portability.settings import Settings

__all__ = ["ApiContext", "Ctx", "Enqueue", "ProbeDestination"]

log = logging.getLogger("portability.api")

#: Publishes "run N is due" for each id; called only after the runs are committed.
Enqueue = Callable[[Sequence[int]], None]
#: Writes, reads back and deletes a probe object; raises ``DestinationError`` with the reason.
ProbeDestination = Callable[[S3Config], None]


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: CredentialBox
    enqueue: Enqueue
    probe: ProbeDestination
    keys: KeyCache
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

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an error."""
        with self.sessions() as session, session.begin():
            yield session

    @cached_property
    def autocommit(self) -> Engine:
        """The same pool without transactions, for lone reads: one round trip each
        (SQLite keeps its short transactions, see ``Runtime.autocommit``)."""
        if self.engine.dialect.name == "sqlite":
            return self.engine
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

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


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Ctx = Annotated[ApiContext, Depends(_context)]
