"""``/v1/redirect-uris``: where the consent flow may send a user back to the app.

A consent request must name one of these exactly (RFC 6749 section 3.1.2); https only, or http
to a loopback address for native apps (RFC 8252). Registration is idempotent.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._problems import PROBLEM_RESPONSES
from portability.db.models import OAuthRedirectUri
from portability.registry import register_redirect_uri
from portability.scope import AppScope

router = APIRouter(prefix="/v1/redirect-uris", tags=["redirect URIs"], responses=PROBLEM_RESPONSES)


class RedirectUriIn(BaseModel):
    uri: str = Field(min_length=1, max_length=2000, description="Exact URI, https (or loopback).")


class RedirectUriOut(BaseModel):
    id: int
    uri: str
    created_at: datetime

    @classmethod
    def of(cls, row: OAuthRedirectUri) -> RedirectUriOut:
        return cls(id=row.id, uri=row.uri, created_at=row.created_at)


@router.post("", status_code=201, summary="Register a redirect URI for the consent flow")
def register(body: RedirectUriIn, caller: AppCaller, ctx: Ctx) -> RedirectUriOut:
    with ctx.writing() as session:
        return RedirectUriOut.of(register_redirect_uri(session, caller.app_id, body.uri))


@router.get("", summary="The app's redirect URIs")
def list_uris(caller: AppCaller, ctx: Ctx) -> list[RedirectUriOut]:
    with ctx.reading() as session:
        rows = session.scalars(
            AppScope(session, caller.app_id).select(OAuthRedirectUri).order_by(OAuthRedirectUri.id)
        )
        return [RedirectUriOut.of(row) for row in rows]
