"""``/internal``: the platform tells us its users' countries and the grants its consent service
recorded. Authenticated by the service token, never by an app's key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.api._auth import PlatformCaller
from portability.api._context import Ctx
from portability.api._idempotency import PLATFORM, IdempotencyKey, create_once
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import BodyId, PathId, Text
from portability.api.grants import GrantOut
from portability.api.transfers import Categories, category_text
from portability.db.models import Authorization, PlatformUser
from portability.errors import NotFoundError, ValidationError
from portability.registry import delete_user, record_consent, revoke_grant, upsert_user

router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    responses={k: v for k, v in PROBLEM_RESPONSES.items() if k != 429},
)

UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class UserIn(BaseModel):
    country: Annotated[str, Text(2, 2)] = Field(description="ISO 3166-1 alpha-2 code.")


class UserOut(BaseModel):
    id: str
    country: str
    created_at: datetime


class ConsentIn(BaseModel):
    user_id: Annotated[str, Text(64, 1)]
    app_id: BodyId
    categories: Categories
    access: Literal["single", "ongoing"]
    expires_at: datetime | None = None


class InternalGrantOut(GrantOut):
    """A grant as the platform sees it: with its own user id beside the app's pseudonym."""

    app_id: int
    user_id: str


class RevokeIn(BaseModel):
    reason: Annotated[str, Text(500, 1)] = "revoked by the user"


def _grant_out(row: Authorization, key: bytes) -> InternalGrantOut:
    return InternalGrantOut(
        **GrantOut.of(row, key).model_dump(), app_id=row.app_id, user_id=row.user_id
    )


@router.put("/users/{user_id}", summary="Create or update a platform user")
def put_user(
    user_id: UserId, body: UserIn, _caller: PlatformCaller, ctx: Ctx, response: Response
) -> UserOut:
    with ctx.writing() as session:
        user, created = upsert_user(session, user_id=user_id, country=body.country)
        response.status_code = 201 if created else 200
        return UserOut(id=user.id, country=user.country, created_at=user.created_at)


@router.post(
    "/grants", status_code=201, response_model=InternalGrantOut, summary="Record a consent"
)
def create_grant(
    body: ConsentIn,
    request: Request,
    _caller: PlatformCaller,
    ctx: Ctx,
    key: IdempotencyKey = None,
) -> Response:
    """Refused with 403 `consent-refused` for a user outside the eligible (EEA) countries or
    an app that is not approved; 404 for an unknown user or app."""
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise ValidationError("expires_at needs a time zone offset", field="expires_at")

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        row = record_consent(
            session,
            user_id=body.user_id,
            app_id=body.app_id,
            categories=category_text(body.categories),
            access=body.access,
            eligible_countries=ctx.settings.eligible_countries,
            expires_at=body.expires_at,
        )
        return _grant_out(row, ctx.settings.resolved_pseudonym_key()), []

    return create_once(ctx, request, owner=PLATFORM, key=key, body=body, create=make)


@router.post("/grants/{grant_id}/revoke", summary="Revoke a grant (its schedules stop)")
def revoke(
    grant_id: PathId, _caller: PlatformCaller, ctx: Ctx, body: RevokeIn | None = None
) -> InternalGrantOut:
    with ctx.writing() as session:
        row = revoke_grant(session, grant_id, reason=(body or RevokeIn()).reason)
        return _grant_out(row, ctx.settings.resolved_pseudonym_key())


class UserDeletedOut(BaseModel):
    id: str
    deleted_at: datetime
    #: Grants revoked by this call (0 when the deletion was already recorded).
    grants_revoked: int


@router.delete("/users/{user_id}", summary="Record that a user deleted their account")
def delete_user_account(user_id: UserId, _caller: PlatformCaller, ctx: Ctx) -> UserDeletedOut:
    """Every live grant of the user is revoked (each app gets `authorization.removed` with
    reason `user_deleted`), their schedules stop, their download archives are deleted at the
    next housekeeping pass, and the id can no longer grant. Safe to repeat."""
    with ctx.writing() as session:
        user, revoked = delete_user(session, user_id=user_id)
        assert user.deleted_at is not None
        return UserDeletedOut(id=user.id, deleted_at=user.deleted_at, grants_revoked=revoked)


@router.get("/users/{user_id}/grants", summary="A user's grants, newest first")
def user_grants(
    user_id: UserId, _caller: PlatformCaller, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> Page[InternalGrantOut]:
    with ctx.reading() as session:
        if session.get(PlatformUser, user_id) is None:
            raise NotFoundError(f"user {user_id} not found")
        query = select(Authorization).where(Authorization.user_id == user_id)
        key = ctx.settings.resolved_pseudonym_key()
        return paginate(
            session,
            query,
            Authorization.id,
            cursor=cursor,
            limit=limit,
            convert=lambda row: _grant_out(row, key),
        )
