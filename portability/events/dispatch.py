"""The dispatcher: turn new events into deliveries, and re-send what the broker lost.

Run periodically by beat and by the standalone scheduler loop (every
``events_dispatch_interval_seconds``); several at once are safe. Each call:

1. claims up to ``events_dispatch_batch_size`` undispatched events (``FOR UPDATE SKIP LOCKED``
   on PostgreSQL), creates one delivery per enabled endpoint of the event's app that wants its
   type, and marks the events dispatched, in one transaction; after the commit it publishes
   the new deliveries. An event whose app has no endpoint is dispatched to nobody.
2. publishes again every delivery that is due, not leased by a live attempt, and either has
   never been published for this attempt or was published ``webhook_resend_after_seconds``
   ago without effect (the broker lost it, a worker died holding it). Duplicates are harmless:
   ``send.attempt_delivery`` claims an attempt once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from portability.db.base import utcnow
from portability.db.event_models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from portability.settings import Settings

__all__ = ["DispatchResult", "EnqueueDeliveries", "dispatch_events"]

log = logging.getLogger("portability.events")

#: Publishes "delivery N is due" for each id; called only after the deliveries are committed.
EnqueueDeliveries = Callable[[list[int]], object]

_MAX_ROUNDS = 50


@dataclass
class DispatchResult:
    events: int = 0
    deliveries: int = 0
    resent: int = 0


def dispatch_events(
    settings: Settings,
    sessions: sessionmaker[Session],
    enqueue: EnqueueDeliveries,
    *,
    now: datetime | None = None,
) -> DispatchResult:
    result = DispatchResult()
    for _ in range(_MAX_ROUNDS):
        with sessions.begin() as session:
            events, ids = _fan_out(session, settings.events_dispatch_batch_size, now or utcnow())
        result.events += events
        result.deliveries += len(ids)
        if ids:
            enqueue(ids)
        if events < settings.events_dispatch_batch_size:
            break
    with sessions.begin() as session:
        lost = _lost_deliveries(session, settings, now or utcnow())
    if lost:
        enqueue(lost)
        result.resent = len(lost)
        log.info("dispatcher: %d webhook deliveries published again", len(lost))
    return result


def _fan_out(session: Session, limit: int, now: datetime) -> tuple[int, list[int]]:
    claimed = session.execute(
        select(Event.id, Event.app_id, Event.type)
        .where(Event.dispatched_at.is_(None))
        .order_by(Event.occurred_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not claimed:
        return 0, []
    apps = {row.app_id for row in claimed}
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.app_id.in_(apps), WebhookEndpoint.is_disabled.is_(False)
        )
    ).all()
    rows = [
        {
            "event_id": event.id,
            "endpoint_id": endpoint.id,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "enqueued_at": now,
        }
        for event in claimed
        for endpoint in endpoints
        if endpoint.app_id == event.app_id and endpoint.wants(event.type)
    ]
    ids: list[int] = []
    if rows:
        ids = list(
            session.scalars(insert(WebhookDelivery).returning(WebhookDelivery.id), rows).all()
        )
    session.execute(
        update(Event)
        .where(Event.id.in_([event.id for event in claimed]))
        .values(dispatched_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(claimed), ids


def _lost_deliveries(session: Session, settings: Settings, now: datetime) -> list[int]:
    resend_before = now - timedelta(seconds=settings.webhook_resend_after_seconds)
    ids = list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                WebhookDelivery.lease_until.is_(None) | (WebhookDelivery.lease_until < now),
                WebhookDelivery.enqueued_at.is_(None)
                | (WebhookDelivery.enqueued_at < WebhookDelivery.next_attempt_at)
                | (WebhookDelivery.enqueued_at <= resend_before),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(settings.events_dispatch_batch_size)
            .with_for_update(skip_locked=True)
        ).all()
    )
    if ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids
