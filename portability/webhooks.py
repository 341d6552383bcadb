"""Webhook endpoints and the developer-facing functions over events and deliveries.

Plain functions for the developer API (and the CLI): each takes a session and the caller's
``app_id``, never commits, and treats another app's endpoint, event or delivery as not found
(isolation in one place: every query here is filtered by ``app_id``). A function that creates
deliveries leaves them ``pending`` with no message: the caller publishes them after its commit
(``workers.events.enqueue_deliveries``), or the dispatcher does within a second or so.

An endpoint's URL is checked with the endpoint policy at registration (``policy``, from
``Settings.endpoint_policy``) and again before every attempt. Its signing secret
(``whsec_...``) is returned once, by ``create_endpoint`` and ``rotate_secret``, and stored
sealed with the credential keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portability.crypto import CredentialBox
from portability.db.base import utcnow
from portability.db.event_models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from portability.db.models import App
from portability.errors import NotFoundError, ValidationError
from portability.events import EventType, record_event
from portability.events.payload import new_secret, payload_of
from portability.netpolicy import EndpointPolicy, check_url_shape

__all__ = [
    "DeliveryView",
    "EndpointView",
    "EventView",
    "create_endpoint",
    "delete_endpoint",
    "get_endpoint",
    "get_event",
    "list_deliveries",
    "list_endpoints",
    "list_events",
    "redeliver",
    "rotate_secret",
    "send_test_event",
    "set_endpoint_enabled",
]

_STRICT = EndpointPolicy()
_SUBSCRIBABLE = frozenset(t.value for t in EventType) - {EventType.WEBHOOK_TEST.value}


@dataclass(frozen=True, slots=True)
class EndpointView:
    """An endpoint as its app sees it (never its secret)."""

    id: int
    url: str
    description: str
    event_types: tuple[str, ...]
    is_disabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_until: datetime | None
    created_at: datetime


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


def _types(event_types: Iterable[str]) -> str:
    wanted = sorted({t.strip() for t in event_types if t.strip()})
    if not wanted:
        raise ValidationError("an endpoint must want at least one event type ('*' for all)")
    unknown = [t for t in wanted if t != "*" and t not in _SUBSCRIBABLE]
    if unknown:
        raise ValidationError(
            f"unknown event types {', '.join(unknown)}: choose among "
            f"{', '.join(sorted(_SUBSCRIBABLE))}, or '*'"
        )
    return "*" if "*" in wanted else ",".join(wanted)


def _view(row: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=row.id,
        url=row.url,
        description=row.description,
        event_types=tuple(row.event_types.split(",")),
        is_disabled=row.is_disabled,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        previous_secret_until=row.previous_secret_until,
        created_at=row.created_at,
    )


def _endpoint(session: Session, app_id: int, endpoint_id: int) -> WebhookEndpoint:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.app_id != app_id:
        raise NotFoundError(f"webhook endpoint {endpoint_id} not found")
    return row


def create_endpoint(
    session: Session,
    box: CredentialBox,
    *,
    app_id: int,
    url: str,
    event_types: Iterable[str] = ("*",),
    description: str = "",
    policy: EndpointPolicy = _STRICT,
) -> tuple[EndpointView, str]:
    """Register an endpoint; returns it and its signing secret, shown this once only."""
    check_url_shape(url)
    policy.check_url(url)  # before any query: a slow DNS lookup holds no transaction open
    if session.get(App, app_id) is None:
        raise NotFoundError(f"app {app_id} not found")
    secret = new_secret()
    row = WebhookEndpoint(
        app_id=app_id,
        url=url,
        description=description[:500],
        event_types=_types(event_types),
        secret_encrypted=box.seal({"secret": secret}),
        is_disabled=False,
    )
    session.add(row)
    session.flush()
    return _view(row), secret


def list_endpoints(session: Session, app_id: int) -> list[EndpointView]:
    rows = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.app_id == app_id).order_by(WebhookEndpoint.id)
    )
    return [_view(row) for row in rows]


def get_endpoint(session: Session, app_id: int, endpoint_id: int) -> EndpointView:
    return _view(_endpoint(session, app_id, endpoint_id))


def rotate_secret(
    session: Session,
    box: CredentialBox,
    app_id: int,
    endpoint_id: int,
    *,
    overlap_seconds: float,
    now: datetime | None = None,
) -> str:
    """A new signing secret, returned once. For ``overlap_seconds`` every message is signed
    with both the new and the old secret, so receivers may switch at any time within it."""
    row = _endpoint(session, app_id, endpoint_id)
    secret = new_secret()
    row.previous_secret_encrypted = row.secret_encrypted
    row.previous_secret_until = (now or utcnow()) + timedelta(seconds=overlap_seconds)
    row.secret_encrypted = box.seal({"secret": secret})
    session.flush()
    return secret


def set_endpoint_enabled(
    session: Session, app_id: int, endpoint_id: int, enabled: bool
) -> EndpointView:
    """Disable an endpoint, or enable it again (after it was disabled for failing)."""
    row = _endpoint(session, app_id, endpoint_id)
    row.is_disabled = not enabled
    row.disabled_reason = None if enabled else "disabled by the app"
    if enabled:
        row.failing_since = None
    session.flush()
    return _view(row)


def delete_endpoint(session: Session, app_id: int, endpoint_id: int) -> None:
    """Remove an endpoint and its delivery history; nothing more is sent to it."""
    row = _endpoint(session, app_id, endpoint_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
    session.delete(row)
    session.flush()


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
) -> list[DeliveryView]:
    """An endpoint's deliveries, newest first: status, attempts, response code and timing."""
    _endpoint(session, app_id, endpoint_id)
    query = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(min(max(1, limit), 1000))
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == DeliveryStatus(status).value)
    return [_delivery_view(delivery, kind) for delivery, kind in session.execute(query)]


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
) -> list[EventView]:
    """The app's events, newest first, as their payloads are sent."""
    query = (
        select(Event)
        .where(Event.app_id == app_id, Event.type != EventType.WEBHOOK_TEST.value)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(min(max(1, limit), 1000))
    )
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
        targets = [_endpoint(session, app_id, endpoint_id)]
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
    row = _endpoint(session, app_id, endpoint_id)
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
        Event.__table__.update().where(Event.id == event_id).values(dispatched_at=now)  # type: ignore[attr-defined]
    )
    return _new_delivery(session, event_id, row.id)


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
