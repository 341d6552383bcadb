"""``/v1/webhook-endpoints``: where the app hears about its runs, replays and grants.

An endpoint's URL passes the network policy at registration and at every attempt; its
signing secret is shown once (on creation and on rotation) and kept sealed. Deliveries are
published after the commit; the dispatcher publishes any whose message was lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from portability import webhooks
from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._idempotency import IdempotencyKey, create_once
from portability.api._pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import PathId, Text
from portability.db.event_models import WebhookEndpoint
from portability.errors import EndpointRefusedError
from portability.scope import AppScope

__all__ = ["DeliveryOut", "EndpointOut", "router"]

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"], responses=PROBLEM_RESPONSES)

#: The event types an endpoint may ask for ("*": all of them, present and future).
EventTypeName = Literal[
    "*",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "stream.replayed",
    "authorization.created",
    "authorization.removed",
    "schedule.disabled",
    "destination.failing",
]
EventTypes = Annotated[list[EventTypeName], Field(min_length=1, max_length=16)]
Url = Annotated[str, Text(2000, 1)]
Description = Annotated[str, Text(500)]


class EndpointIn(BaseModel):
    url: Url = Field(description="https, on a public address; the network policy checks it.")
    event_types: EventTypes = Field(default=["*"], description="Types to receive; `*` for all.")
    description: Description = ""


class EndpointPatch(BaseModel):
    """What to change; an absent field stays as it is."""

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None, description="false stops deliveries; true resumes a disabled endpoint."
    )


class EndpointOut(BaseModel):
    """An endpoint as stored, never with its secret."""

    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why it is disabled: by you, or every attempt failed for the whole retry "
        "window (fix the receiver, then enable it again)."
    )
    failing_since: datetime | None = Field(description="Start of the current run of failures.")
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation, the old secret also signs until then."
    )
    created_at: datetime

    @classmethod
    def of(cls, view: webhooks.EndpointView) -> EndpointOut:
        return cls(
            id=view.id,
            url=view.url,
            description=view.description,
            event_types=list(view.event_types),
            enabled=not view.is_disabled,
            disabled_reason=view.disabled_reason,
            failing_since=view.failing_since,
            previous_secret_expires_at=view.previous_secret_until,
            created_at=view.created_at,
        )


class EndpointCreatedOut(EndpointOut):
    secret: str | None = Field(
        description="The signing secret (`whsec_...`), shown this once: store it now. Null "
        "when a retry with the same Idempotency-Key answers: rotate to get a new one."
    )


class SecretOut(EndpointOut):
    secret: str = Field(description="The new signing secret, shown this once.")


class DeliveryOut(BaseModel):
    """One event owed to one endpoint, and how its attempts went."""

    id: int
    event_id: str = Field(description="The `webhook-id` every attempt carries.")
    event_type: str
    endpoint_id: int
    status: str = Field(description="pending | succeeded | failed")
    attempts: int
    response_code: int | None = Field(description="HTTP status of the last attempt.")
    error: str | None = Field(description="Why the last attempt failed.")
    duration_ms: int | None = Field(description="How long the last attempt took.")
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When a pending one is tried next.")
    finished_at: datetime | None

    @classmethod
    def of(cls, view: webhooks.DeliveryView) -> DeliveryOut:
        return cls(
            id=view.id,
            event_id=view.event_id,
            event_type=view.event_type,
            endpoint_id=view.endpoint_id,
            status=view.status,
            attempts=view.attempts,
            response_code=view.last_status_code,
            error=view.last_error,
            duration_ms=view.last_duration_ms,
            created_at=view.created_at,
            last_attempt_at=view.last_attempt_at,
            next_attempt_at=view.next_attempt_at,
            finished_at=view.finished_at,
        )


@contextmanager
def _refusal_names_url() -> Iterator[None]:
    """The network policy names ``endpoint_url``; here the field is ``url``."""
    try:
        yield
    except EndpointRefusedError as exc:
        exc.field = "url"
        raise


@router.post("", status_code=201, response_model=EndpointCreatedOut, summary="Register an endpoint")
def create(
    body: EndpointIn, request: Request, caller: AppCaller, ctx: Ctx, key: IdempotencyKey = None
) -> Response:
    """Returns the signing secret once. A URL the network policy refuses (not https, or a
    host resolving to a loopback, private, link-local, CGNAT, ULA or metadata address) is a
    422 naming the problem. A retry with the same `Idempotency-Key` answers with the same
    endpoint, without its secret (it is never stored in the clear)."""
    made: dict[int, str] = {}

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        with _refusal_names_url():
            view, secret = webhooks.create_endpoint(
                session,
                ctx.box,
                app_id=caller.app_id,
                url=body.url,
                event_types=body.event_types,
                description=body.description,
                policy=ctx.settings.endpoint_policy,
            )
        made[view.id] = secret
        # What the Idempotency-Key record keeps: everything but the secret.
        return EndpointCreatedOut(**EndpointOut.of(view).model_dump(), secret=None), []

    response = create_once(ctx, request, owner=caller.app_id, key=key, body=body, create=make)
    content = orjson.loads(bytes(response.body))
    secret = made.get(content["id"])
    if secret is None:
        return response  # a replay (or a concurrent twin's answer): no secret to show
    return Response(orjson.dumps({**content, "secret": secret}), 201, media_type="application/json")


@router.get("", summary="The app's endpoints, newest first")
def list_endpoints(
    caller: AppCaller, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> Page[EndpointOut]:
    with ctx.reading() as session:
        query = AppScope(session, caller.app_id).select(WebhookEndpoint)
        if cursor:
            query = query.where(WebhookEndpoint.id < decode_cursor(cursor))
        rows = session.scalars(query.order_by(WebhookEndpoint.id.desc()).limit(limit + 1)).all()
        items = [
            EndpointOut.of(webhooks.get_endpoint(session, caller.app_id, row.id))
            for row in rows[:limit]
        ]
    more = len(rows) > limit
    return Page[EndpointOut](
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )


@router.get("/{endpoint_id}", summary="One endpoint: enabled or disabled, and why")
def show(endpoint_id: PathId, caller: AppCaller, ctx: Ctx) -> EndpointOut:
    with ctx.reading() as session:
        return EndpointOut.of(webhooks.get_endpoint(session, caller.app_id, endpoint_id))


@router.patch("/{endpoint_id}", summary="Change the URL, types or description; enable, disable")
def update(endpoint_id: PathId, body: EndpointPatch, caller: AppCaller, ctx: Ctx) -> EndpointOut:
    """A new URL passes the network policy as at registration. Enabling an endpoint that was
    disabled for failing sends again what is owed from then on."""
    with _refusal_names_url(), ctx.writing() as session:
        view = webhooks.update_endpoint(
            session,
            caller.app_id,
            endpoint_id,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            enabled=body.enabled,
            policy=ctx.settings.endpoint_policy,
        )
        return EndpointOut.of(view)


@router.delete("/{endpoint_id}", status_code=204, summary="Delete, with its delivery history")
def delete(endpoint_id: PathId, caller: AppCaller, ctx: Ctx) -> Response:
    with ctx.writing() as session:
        webhooks.delete_endpoint(session, caller.app_id, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", summary="A new secret; the old one signs a while")
def rotate_secret(endpoint_id: PathId, caller: AppCaller, ctx: Ctx) -> SecretOut:
    """Returns the new secret once. Every message is signed with both secrets until
    `previous_secret_expires_at` (`PORTABILITY_WEBHOOK_SECRET_OVERLAP_SECONDS`, 24 h by
    default), so the receiver can switch at any time within it; then only the new one."""
    with ctx.writing() as session:
        secret = webhooks.rotate_secret(
            session,
            ctx.box,
            caller.app_id,
            endpoint_id,
            overlap_seconds=ctx.settings.webhook_secret_overlap_seconds,
        )
        view = webhooks.get_endpoint(session, caller.app_id, endpoint_id)
        return SecretOut(**EndpointOut.of(view).model_dump(), secret=secret)


@router.post(
    "/{endpoint_id}/test", status_code=202, response_model=DeliveryOut, summary="Send a test event"
)
def send_test(
    endpoint_id: PathId, request: Request, caller: AppCaller, ctx: Ctx, key: IdempotencyKey = None
) -> Response:
    """A `webhook.test` event to this endpoint only, delivered and retried like any other."""
    published: list[int] = []

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        delivery_id = webhooks.send_test_event(session, caller.app_id, endpoint_id)
        published[:] = [delivery_id]
        if ctx.publishes_deliveries:
            webhooks.mark_enqueued(session, published)
        (view,) = webhooks.deliveries_by_id(session, caller.app_id, [delivery_id])
        return DeliveryOut.of(view), []

    response = create_once(
        ctx, request, owner=caller.app_id, key=key, body=None, create=make, status_code=202
    )
    ctx.publish_deliveries(published)
    return response


DeliveryStatusName = Literal["pending", "succeeded", "failed"]


@router.get("/{endpoint_id}/deliveries", summary="The endpoint's deliveries, newest first")
def list_deliveries(
    endpoint_id: PathId,
    caller: AppCaller,
    ctx: Ctx,
    status: Annotated[DeliveryStatusName | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[DeliveryOut]:
    """Status, attempts, the last response code, error and duration, and the times."""
    before = decode_cursor(cursor) if cursor else None
    with ctx.reading() as session:
        views = webhooks.list_deliveries(
            session, caller.app_id, endpoint_id, status=status, limit=limit + 1, before_id=before
        )
    items = [DeliveryOut.of(view) for view in views[:limit]]
    more = len(views) > limit
    return Page[DeliveryOut](
        items=items, next_cursor=encode_cursor(items[-1].id) if more and items else None
    )
