"""``/v1/events``: what the app was told, as it was sent; and sending an event again."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from portability import webhooks
from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._idempotency import IdempotencyKey, create_once
from portability.api._pagination import Cursor, Limit, Page, decode_key_cursor, encode_key_cursor
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import BodyId
from portability.api.webhook_endpoints import DeliveryOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/events", tags=["webhooks"], responses=PROBLEM_RESPONSES)

_EVENT_ID = r"^evt_[0-9a-z]{26}$"
EventId = Annotated[str, Path(pattern=_EVENT_ID, description="`evt_` and a ULID.")]
EventTypeName = Literal[
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "stream.replayed",
    "authorization.created",
    "authorization.removed",
    "schedule.disabled",
    "destination.failing",
]


class EventOut(BaseModel):
    """An event and the payload its deliveries carry (signed as sent)."""

    id: str = Field(description="The `webhook-id` of every delivery of it: deduplicate on it.")
    type: str
    occurred_at: datetime
    payload: dict[str, Any] = Field(description="`{type, timestamp, data}`, as delivered.")

    @classmethod
    def of(cls, view: webhooks.EventView) -> EventOut:
        return cls(id=view.id, type=view.type, occurred_at=view.occurred_at, payload=view.payload)


class RedeliverIn(BaseModel):
    endpoint_id: BodyId | None = Field(
        default=None, description="One endpoint; omit for every enabled endpoint that wants it."
    )


class RedeliveredOut(BaseModel):
    deliveries: list[DeliveryOut]


def _is_event_id(key: str) -> bool:
    return re.fullmatch(_EVENT_ID, key) is not None


@router.get("", summary="The app's events, newest first")
def list_events(
    caller: AppCaller,
    ctx: Ctx,
    type: Annotated[EventTypeName | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[EventOut]:
    before = decode_key_cursor(cursor, "evt", _is_event_id) if cursor else None
    with ctx.reading() as session:
        views = webhooks.list_events(
            session,
            caller.app_id,
            ctx.settings.resolved_pseudonym_key(),
            event_type=type,
            limit=limit + 1,
            before=before,
        )
    items = [EventOut.of(view) for view in views[:limit]]
    more = len(views) > limit
    return Page[EventOut](
        items=items,
        next_cursor=encode_key_cursor("evt", items[-1].id) if more and items else None,
    )


@router.get("/{event_id}", summary="One event, with the payload it is sent with")
def show(event_id: EventId, caller: AppCaller, ctx: Ctx) -> EventOut:
    with ctx.reading() as session:
        view = webhooks.get_event(
            session, caller.app_id, event_id, ctx.settings.resolved_pseudonym_key()
        )
        return EventOut.of(view)


@router.post(
    "/{event_id}/redeliver",
    status_code=202,
    response_model=RedeliveredOut,
    summary="Deliver an event again, with the same webhook-id",
)
def redeliver(
    event_id: EventId,
    body: RedeliverIn,
    request: Request,
    caller: AppCaller,
    ctx: Ctx,
    key: IdempotencyKey = None,
) -> Response:
    """A new delivery, to one endpoint or to every enabled endpoint that wants the event's
    type, retried like any other; the receiver sees the same `webhook-id`."""
    published: list[int] = []

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        made = webhooks.redeliver(session, caller.app_id, event_id, endpoint_id=body.endpoint_id)
        published[:] = made
        if ctx.publishes_deliveries:
            webhooks.mark_enqueued(session, made)
        views = webhooks.deliveries_by_id(session, caller.app_id, made)
        return RedeliveredOut(deliveries=[DeliveryOut.of(view) for view in views]), []

    response = create_once(
        ctx, request, owner=caller.app_id, key=key, body=body, create=make, status_code=202
    )
    ctx.publish_deliveries(published)
    return response
