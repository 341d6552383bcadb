"""What an app was told: its events, each endpoint's deliveries, redelivery and test events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.event_models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from portability.errors import NotFoundError
from portability.events import EventType, record_event
from portability.events.payload import payload_of
from portability.webhooks._endpoints import endpoint_row

__all__ = [
    "DeliveryView",
    "EventView",
    "deliveries_by_id",
    "get_event",
    "list_deliveries",
    "list_events",
    "mark_enqueued",
    "redeliver",
    "send_test_event",
]


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    event_id: str
    event_type: str
    endpoint_id: int
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventView:
    id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any]


def _delivery_view(delivery: WebhookDelivery, event_type: str) -> DeliveryView:
    pending = delivery.status == DeliveryStatus.PENDING
    return DeliveryView(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=event_type,
        endpoint_id=delivery.endpoint_id,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_duration_ms=delivery.last_duration_ms,
        created_at=delivery.created_at,
        last_attempt_at=delivery.last_attempt_at,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        finished_at=delivery.finished_at,
    )


def list_deliveries(
    session: Session,
    app_id: int,
    endpoint_id: int,
    *,
    status: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[DeliveryView]:
    """An endpoint's deliveries, newest first: status, attempts, response code and timing.
    ``before_id`` pages on: only deliveries created before that one."""
    endpoint_row(session, app_id, endpoint_id)
    query = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(min(max(1, limit), 1000))
    )
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == DeliveryStatus(status).value)
    return [_delivery_view(delivery, kind) for delivery, kind in session.execute(query)]


def deliveries_by_id(session: Session, app_id: int, delivery_ids: list[int]) -> list[DeliveryView]:
    """The app's deliveries among ``delivery_ids``, in that order (another app's are left out)."""
    rows = session.execute(
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(delivery_ids), WebhookEndpoint.app_id == app_id)
    ).all()
    found = {delivery.id: _delivery_view(delivery, kind) for delivery, kind in rows}
    return [found[i] for i in delivery_ids if i in found]


def _event(session: Session, app_id: int, event_id: str) -> Event:
    row = session.get(Event, event_id)
    if row is None or row.app_id != app_id:
        raise NotFoundError(f"event {event_id} not found")
    return row


def list_events(
    session: Session,
    app_id: int,
    pseudonym_key: bytes,
    *,
    event_type: str | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[EventView]:
    """The app's events, newest first (ids sort by creation time), as their payloads are
    sent. ``before`` pages on: only events whose id sorts before that one."""
    query = (
        select(Event)
        .where(Event.app_id == app_id, Event.type != EventType.WEBHOOK_TEST.value)
        .order_by(Event.id.desc())
        .limit(min(max(1, limit), 1000))
    )
    if before is not None:
        query = query.where(Event.id < before)
    if event_type is not None:
        query = query.where(Event.type == event_type)
    return [
        EventView(row.id, row.type, row.occurred_at, payload_of(row, pseudonym_key))
        for row in session.scalars(query)
    ]


def get_event(session: Session, app_id: int, event_id: str, pseudonym_key: bytes) -> EventView:
    row = _event(session, app_id, event_id)
    return EventView(row.id, row.type, row.occurred_at, payload_of(row, pseudonym_key))


def redeliver(
    session: Session, app_id: int, event_id: str, *, endpoint_id: int | None = None
) -> list[int]:
    """Deliver an event again (same ``webhook-id``) to one endpoint, or to every enabled
    endpoint of the app that wants it; returns the new deliveries' ids, to publish after the
    commit."""
    event = _event(session, app_id, event_id)
    if endpoint_id is not None:
        targets = [endpoint_row(session, app_id, endpoint_id)]
    else:
        targets = [
            row
            for row in session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.app_id == app_id, WebhookEndpoint.is_disabled.is_(False)
                )
            )
            if row.wants(event.type)
        ]
    return [_new_delivery(session, event.id, row.id) for row in targets]


def send_test_event(session: Session, app_id: int, endpoint_id: int) -> int:
    """A ``webhook.test`` event for one endpoint only; returns its delivery's id."""
    row = endpoint_row(session, app_id, endpoint_id)
    now = utcnow()
    event_id = record_event(
        session,
        app_id,
        EventType.WEBHOOK_TEST,
        {"endpoint_id": row.id, "message": "a test event, sent on request"},
        occurred_at=now,
    )
    assert event_id is not None  # no dedup key: always recorded
    session.flush()
    session.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(dispatched_at=now)
        .execution_options(synchronize_session=False)
    )
    return _new_delivery(session, event_id, row.id)


def mark_enqueued(session: Session, delivery_ids: list[int]) -> None:
    """Say that the caller publishes these new deliveries itself after its commit, so the
    dispatcher does not publish them a second time (it would only once the message is late)."""
    if delivery_ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _new_delivery(session: Session, event_id: str, endpoint_id: int) -> int:
    now = utcnow()
    delivery = WebhookDelivery(
        event_id=event_id,
        endpoint_id=endpoint_id,
        status=DeliveryStatus.PENDING.value,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery.id
