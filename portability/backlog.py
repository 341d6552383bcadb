"""How far behind the system is: schedules due and unclaimed, and the delivery lag.

Read by the scheduler every few ticks for its gauges (``portability.probes``); each is one
query on indexed columns, plus one indexed count for the lag in changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import aliased

from portability.db.base import utcnow
from portability.db.event_models import Event
from portability.db.models import Access, Authorization, Run, Schedule, Stream
from portability.platform.tables import PlatformChange
from portability.sources.position import Position

__all__ = [
    "Lag",
    "StateCollector",
    "delivery_lag",
    "due_backlog",
    "outbox_backlog",
    "unseen_changes",
]

#: The lag in changes is counted up to this many (a count is an index scan).
MAX_COUNTED_CHANGES = 1_000_000


@dataclass(frozen=True)
class Lag:
    """The furthest-behind ongoing stream: seconds since it was last known current, and the
    changes of its user and category that its position has not seen (an estimate)."""

    seconds: float = 0.0
    changes: int = 0
    #: Which stream that is (None when no ongoing stream exists).
    authorization_id: int | None = None
    category: str | None = None


def due_backlog(engine: Engine, now: datetime | None = None) -> int:
    """Schedules due and not claimed: what the next tick has to do (the claim's own index)."""
    with engine.connect() as conn:
        value = conn.scalar(
            select(func.count())
            .select_from(Schedule)
            .where(Schedule.next_run_at <= (now or utcnow()), Schedule.is_paused.is_(False))
        )
    return int(value or 0)


def outbox_backlog(engine: Engine) -> int:
    """Events not dispatched yet: what the dispatcher has to fan out (its partial index)."""
    with engine.connect() as conn:
        value = conn.scalar(
            select(func.count()).select_from(Event).where(Event.dispatched_at.is_(None))
        )
    return int(value or 0)


def delivery_lag(engine: Engine, now: datetime | None = None) -> Lag:
    """The furthest-behind ongoing stream's lag (``Lag()`` when there is none).

    A stream is current as of its last delivery, or as of the start of its grant's latest
    succeeded run to that destination (a run that found nothing new leaves the position where
    it was, but proves the stream was not behind). Only streams of ongoing, unrevoked grants
    with an active schedule count: a one-time transfer is never "behind".
    """
    now = now or utcnow()
    latest_run = aliased(Run)
    last_ok = (
        select(func.max(latest_run.started_at))
        .where(
            latest_run.authorization_id == Stream.authorization_id,
            latest_run.destination_id == Stream.destination_id,
            latest_run.status == "succeeded",
        )
        .scalar_subquery()
    )
    current_as_of = func.coalesce(
        _greatest(engine, Stream.last_delivered_at, last_ok), Stream.updated_at
    )
    active = (
        select(Schedule.id)
        .where(
            Schedule.authorization_id == Stream.authorization_id,
            Schedule.destination_id == Stream.destination_id,
            Schedule.is_paused.is_(False),
            Schedule.disabled_reason.is_(None),
            Schedule.next_run_at.is_not(None),
        )
        .exists()
    )
    query = (
        select(
            current_as_of.label("as_of"),
            Stream.authorization_id,
            Stream.category,
            Stream.position,
            Authorization.user_id,
        )
        .select_from(Stream)
        .join(Authorization, Authorization.id == Stream.authorization_id)
        .where(Authorization.access == Access.ONGOING, Authorization.revoked_at.is_(None), active)
        .order_by(current_as_of.asc())
        .limit(1)
    )
    with engine.connect() as conn:
        oldest = conn.execute(query).one_or_none()
        if oldest is None:
            return Lag()
        changes = unseen_changes(conn, oldest.user_id, oldest.category, oldest.position)
    as_of = oldest.as_of
    if isinstance(as_of, str):  # SQLite loses the column type of an expression
        as_of = datetime.fromisoformat(as_of)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=now.tzinfo)
    return Lag(
        max(0.0, float((now - as_of).total_seconds())),
        changes,
        authorization_id=oldest.authorization_id,
        category=oldest.category,
    )


def unseen_changes(conn: Any, user_id: str, category: str, position: str | None) -> int:
    """Feed rows of the stream's user and category its position does not see (rows of
    transactions in flight at the position, or that began after it), counted to a cap."""
    if position is None:
        return 0  # a first delivery replays the state, whatever the feed holds
    seen = Position.parse(position)
    unseen = PlatformChange.txid >= seen.xmax
    if seen.xip:
        unseen = or_(unseen, PlatformChange.txid.in_(seen.xip))
    rows = (
        select(PlatformChange.position)
        .where(PlatformChange.user_id == user_id, PlatformChange.category == category, unseen)
        .limit(MAX_COUNTED_CHANGES)
        .subquery()
    )
    return int(conn.scalar(select(func.count()).select_from(rows)) or 0)


def _greatest(engine: Engine, *columns: Any) -> Any:
    """GREATEST ignoring NULLs on PostgreSQL; SQLite's MAX(a, b) is NULL if either is, so
    coalesce each side with the other first."""
    if engine.dialect.name == "sqlite":
        a, b = columns
        return func.max(func.coalesce(a, b), func.coalesce(b, a))
    return func.greatest(*columns)


class StateCollector:
    """The backlog and lag gauges computed when scraped, at most every ``ttl`` seconds: for a
    process that does not tick (the API), so its ``/metrics`` shows how far behind the system
    is without waiting for a scheduler's figures."""

    def __init__(self, engine: Engine, ttl: float = 15.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cached: tuple[float, int, Lag, int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self._ttl:
            engine = self._engine
            self._cached = (now, due_backlog(engine), delivery_lag(engine), outbox_backlog(engine))
        _, backlog, lag, outbox = self._cached
        yield GaugeMetricFamily(
            "portability_events_outbox_backlog",
            "Events recorded and not dispatched to their endpoints yet.",
            outbox,
        )
        yield GaugeMetricFamily(
            "portability_scheduler_due_backlog", "Schedules due now and not yet claimed.", backlog
        )
        yield GaugeMetricFamily(
            "portability_delivery_lag_seconds",
            "How far the furthest-behind ongoing stream is behind the change feed.",
            lag.seconds,
        )
        yield GaugeMetricFamily(
            "portability_delivery_lag_changes",
            "Changes of the furthest-behind ongoing stream not delivered yet (an estimate).",
            lag.changes,
        )
