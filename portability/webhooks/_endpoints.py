"""Webhook endpoints: register, list, rotate the signing secret, enable, delete."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from portability.crypto import CredentialBox
from portability.db.base import utcnow
from portability.db.event_models import WebhookDelivery, WebhookEndpoint
from portability.db.models import App
from portability.errors import NotFoundError, ValidationError
from portability.events import EventType
from portability.events.payload import new_secret
from portability.netpolicy import EndpointPolicy, check_url_shape

__all__ = [
    "EndpointView",
    "create_endpoint",
    "delete_endpoint",
    "endpoint_row",
    "get_endpoint",
    "list_endpoints",
    "rotate_secret",
    "set_endpoint_enabled",
    "update_endpoint",
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


def endpoint_row(session: Session, app_id: int, endpoint_id: int) -> WebhookEndpoint:
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
    return _view(endpoint_row(session, app_id, endpoint_id))


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
    row = endpoint_row(session, app_id, endpoint_id)
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
    row = endpoint_row(session, app_id, endpoint_id)
    row.is_disabled = not enabled
    row.disabled_reason = None if enabled else "disabled by the app"
    if enabled:
        row.failing_since = None
    session.flush()
    return _view(row)


def update_endpoint(
    session: Session,
    app_id: int,
    endpoint_id: int,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    policy: EndpointPolicy = _STRICT,
) -> EndpointView:
    """Change what is given (``None``: unchanged). A new URL passes the endpoint policy as at
    registration; enabling an endpoint disabled for failing clears its failure streak."""
    if url is not None:
        check_url_shape(url)
        policy.check_url(url)  # before any query, as in ``create_endpoint``
    wanted = _types(event_types) if event_types is not None else None
    row = endpoint_row(session, app_id, endpoint_id)
    if url is not None:
        row.url = url
    if wanted is not None:
        row.event_types = wanted
    if description is not None:
        row.description = description[:500]
    if enabled is not None:
        return set_endpoint_enabled(session, app_id, endpoint_id, enabled)
    session.flush()
    return _view(row)


def delete_endpoint(session: Session, app_id: int, endpoint_id: int) -> None:
    """Remove an endpoint and its delivery history; nothing more is sent to it."""
    row = endpoint_row(session, app_id, endpoint_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == row.id))
    session.delete(row)
    session.flush()
