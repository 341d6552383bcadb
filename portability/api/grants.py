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
from portability.db.base import utcnow
from portability.db.models import Access, Authorization
from portability.scope import AppScope

router = APIRouter(prefix="/v1/grants", tags=["grants"], responses=PROBLEM_RESPONSES)

GrantState = Literal["active", "expired", "revoked", "used"]


class StreamOut(BaseModel):
    """One (grant, destination, category) stream's position (filled in by the stream work)."""

    destination_id: int
    category: str
    position: str | None
    last_manifest_key: str | None
    last_delivered_at: datetime | None


class GrantOut(BaseModel):
    id: int
    user_id: str = Field(description="The platform's user id (to be replaced by the pseudonym).")
    # TODO(streams): the per-app pseudonym and each stream's position arrive with the export
    # engine's per-stream checkpoints; the fields exist now so clients can code against them.
    user_pseudonym: str | None = Field(default=None, description="The user's id for this app.")
    categories: list[str]
    access: str = Field(description="single | ongoing")
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: GrantState
    streams: list[StreamOut] | None = Field(default=None, description="Per-stream positions.")

    @classmethod
    def of(cls, row: Authorization, now: datetime | None = None) -> GrantOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            categories=sorted(row.category_set),
            access=row.access,
            granted_at=row.granted_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            state=grant_state(row, now or utcnow()),
        )


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
        return paginate(
            session, query, Authorization.id, cursor=cursor, limit=limit, convert=GrantOut.of
        )


@router.get("/{grant_id}", summary="One grant")
def show(grant_id: PathId, caller: AppCaller, ctx: Ctx) -> GrantOut:
    with ctx.reading() as session:
        return GrantOut.of(AppScope(session, caller.app_id).get(Authorization, grant_id))
