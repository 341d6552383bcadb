"""``/v1/grants``: the grants users gave this app (read only: users give and revoke them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import PathId
from portability.categories import Category
from portability.db.base import utcnow
from portability.db.models import Access, Authorization
from portability.pseudonyms import pseudonym
from portability.scope import AppScope
from portability.streams import StreamView, list_streams, request_replay

router = APIRouter(prefix="/v1/grants", tags=["grants"], responses=PROBLEM_RESPONSES)

GrantState = Literal["active", "expired", "revoked", "used"]


class StreamOut(BaseModel):
    """One (grant, destination, category) stream: where it stands and what it last delivered."""

    destination_id: int
    category: str
    position: str | None = Field(
        description="Opaque feed position; null before the first delivery."
    )
    sequence: int = Field(description="Manifests written so far.")
    last_manifest_key: str | None
    last_delivered_at: datetime | None
    replay_pending: str | None = Field(
        description="Why the next delivery will be a full replay, when one is pending."
    )

    @classmethod
    def of(cls, view: StreamView) -> StreamOut:
        return cls(
            destination_id=view.destination_id,
            category=view.category,
            position=view.position,
            sequence=view.sequence,
            last_manifest_key=view.last_manifest_key,
            last_delivered_at=view.last_delivered_at,
            replay_pending=view.replay_pending,
        )


class GrantOut(BaseModel):
    id: int
    user_pseudonym: str = Field(
        description="The user's id for this app: the {user} folder of the bucket and the "
        "manifests' `user`. Never the platform's user id."
    )
    categories: list[str]
    access: str = Field(description="single | ongoing")
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: GrantState
    streams: list[StreamOut] | None = Field(
        default=None, description="Each stream's position and last delivery (on `GET /{id}`)."
    )

    @classmethod
    def of(
        cls,
        row: Authorization,
        key: bytes,
        now: datetime | None = None,
        streams: list[StreamView] | None = None,
    ) -> GrantOut:
        return cls(
            id=row.id,
            user_pseudonym=pseudonym(key, row.app_id, row.user_id),
            categories=sorted(row.category_set),
            access=row.access,
            granted_at=row.granted_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            state=grant_state(row, now or utcnow()),
            streams=[StreamOut.of(view) for view in streams] if streams is not None else None,
        )


class ReplayIn(BaseModel):
    destination_id: int | None = Field(default=None, ge=1, description="Only this destination.")
    category: Category | None = Field(default=None, description="Only this category.")


class ReplayOut(BaseModel):
    streams: list[int] = Field(description="The streams whose next delivery is a full replay.")


def grant_state(row: Authorization, now: datetime) -> GrantState:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.access == Access.SINGLE and row.used_at is not None:
        return "used"
    return "active"


@router.get("", summary="Grants this app holds, newest first")
def list_grants(
    caller: AppCaller,
    ctx: Ctx,
    cursor: Cursor = None,
    limit: Limit = 50,
    revoked: Annotated[bool | None, Query(description="Only revoked (or only unrevoked).")] = None,
) -> Page[GrantOut]:
    with ctx.reading() as session:
        query = AppScope(session, caller.app_id).select(Authorization)
        if revoked is not None:
            column = Authorization.revoked_at
            query = query.where(column.is_not(None) if revoked else column.is_(None))
        key = ctx.settings.resolved_pseudonym_key()
        return paginate(
            session,
            query,
            Authorization.id,
            cursor=cursor,
            limit=limit,
            convert=lambda row: GrantOut.of(row, key),
        )


@router.get("/{grant_id}", summary="One grant, with its streams")
def show(grant_id: PathId, caller: AppCaller, ctx: Ctx) -> GrantOut:
    with ctx.reading() as session:
        row = AppScope(session, caller.app_id).get(Authorization, grant_id)
        streams = list_streams(session, app_id=caller.app_id, authorization_id=grant_id)
        return GrantOut.of(row, ctx.settings.resolved_pseudonym_key(), streams=streams)


@router.post(
    "/{grant_id}/replay", status_code=202, summary="Ask for a full replay of a grant's streams"
)
def replay(grant_id: PathId, body: ReplayIn, caller: AppCaller, ctx: Ctx) -> ReplayOut:
    """The way out of a gap on your side: the next delivery of every matching stream (all of
    the grant's, or one destination's, or one category's) is a full replay of the current
    state, marked `reset: true` with `replay_reason: requested`. A stream that has not
    delivered yet needs none: its first delivery is a replay anyway."""
    with ctx.writing() as session:
        AppScope(session, caller.app_id).get(Authorization, grant_id)
        ids = request_replay(
            session,
            app_id=caller.app_id,
            authorization_id=grant_id,
            destination_id=body.destination_id,
            category=body.category.value if body.category is not None else None,
        )
    return ReplayOut(streams=ids)
