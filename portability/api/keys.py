"""``/v1/keys``: list, rotate (with an overlap) and revoke the app's API keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from portability.api._auth import AppCaller
from portability.api._context import Ctx
from portability.api._problems import PROBLEM_RESPONSES
from portability.db.base import utcnow
from portability.db.models import ApiKey
from portability.keys import list_keys, revoke_key, rotate_keys

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=PROBLEM_RESPONSES)

KeyId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")]


class KeyOut(BaseModel):
    key_id: str
    created_at: datetime
    expires_at: datetime | None = Field(description="Set when rotated out: works until then.")
    revoked_at: datetime | None
    state: str = Field(description="active | expiring | expired | revoked")

    @classmethod
    def of(cls, row: ApiKey, now: datetime) -> KeyOut:
        if row.revoked_at is not None:
            state = "revoked"
        elif row.expires_at is not None:
            state = "expiring" if row.expires_at > now else "expired"
        else:
            state = "active"
        return cls(
            key_id=row.key_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            state=state,
        )


class KeyList(BaseModel):
    items: list[KeyOut]


class NewKeyOut(KeyOut):
    api_key: str = Field(description="Shown this once: store it now.")
    previous_keys_expire_at: datetime = Field(description="The end of the overlap.")


@router.get("", summary="The app's keys (never the keys themselves)")
def list_app_keys(caller: AppCaller, ctx: Ctx) -> KeyList:
    now = utcnow()
    with ctx.reading() as session:
        return KeyList(items=[KeyOut.of(k, now) for k in list_keys(session, caller.app_id)])


@router.post("", status_code=201, summary="Rotate: a new key; the others keep working a while")
def rotate(caller: AppCaller, ctx: Ctx) -> NewKeyOut:
    """Issue a new key. Every other working key keeps working for the configured overlap
    (`PORTABILITY_API_KEY_OVERLAP_SECONDS`), then stops."""
    now = utcnow()
    overlap = ctx.settings.api_key_overlap_seconds
    with ctx.writing() as session:
        row, api_key = rotate_keys(session, caller.app_id, overlap_seconds=overlap, now=now)
        out = NewKeyOut(
            **KeyOut.of(row, now).model_dump(),
            api_key=api_key,
            previous_keys_expire_at=now + timedelta(seconds=overlap),
        )
    ctx.keys.forget_app(caller.app_id)
    return out


@router.post("/{key_id}/revoke", summary="Revoke a key at once")
def revoke(key_id: KeyId, caller: AppCaller, ctx: Ctx) -> KeyOut:
    with ctx.writing() as session:
        out = KeyOut.of(revoke_key(session, caller.app_id, key_id), utcnow())
    ctx.keys.forget_app(caller.app_id)
    return out
