"""Forgetting old events: the outbox and the delivery records are kept for
``events_retention_days``, then deleted in batches (beat and the scheduler loop run this with
the change feed's retention).

An event is deleted only once it was dispatched and every delivery of it has ended (succeeded
or failed): nothing still owed is ever lost to retention.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, exists, select

from portability.db.base import utcnow
from portability.db.event_models import DeliveryStatus, Event, WebhookDelivery

__all__ = ["purge_events"]


def purge_events(
    engine: Engine, *, retention_days: int, now: datetime | None = None, batch: int = 5000
) -> int:
    """Delete ended deliveries and dispatched events older than the window; returns how many
    events went. Each batch is its own short transaction."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    while True:
        with engine.begin() as conn:
            old = select(WebhookDelivery.id).where(
                WebhookDelivery.created_at < cutoff,
                WebhookDelivery.status != DeliveryStatus.PENDING.value,
            )
            gone = conn.execute(
                delete(WebhookDelivery).where(WebhookDelivery.id.in_(old.limit(batch)))
            ).rowcount
        if gone < batch:
            break
    removed = 0
    while True:
        with engine.begin() as conn:
            old_events = select(Event.id).where(
                Event.occurred_at < cutoff,
                Event.dispatched_at.is_not(None),
                ~exists().where(WebhookDelivery.event_id == Event.id),
            )
            gone = conn.execute(delete(Event).where(Event.id.in_(old_events.limit(batch)))).rowcount
        removed += gone
        if gone < batch:
            return removed
