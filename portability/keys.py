"""API keys: issued once, stored as a hash, rotated with an overlap, revoked.

A key reads ``pk_<12 hex>_<43 url-safe characters>``. Its head, ``pk_<12 hex>``, is the key
id: stored in clear, shown in listings and logs, enough to tell keys apart. Only a SHA-256 of
the whole key is kept (256 random bits: no dictionary reaches it, and one indexed equality
finds it). Functions take a session and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from portability.db.base import utcnow
from portability.db.models import ApiKey, App
from portability.errors import ConflictError, NotFoundError
from portability.scope import AppScope

__all__ = [
    "VerifiedKey",
    "hash_key",
    "issue_key",
    "key_id_of",
    "list_keys",
    "new_key",
    "revoke_key",
    "rotate_keys",
    "verify_key",
]


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id_of(api_key: str) -> str:
    """The visible id at the head of a key (``pk_`` and 12 hex digits)."""
    return api_key[:15]


def new_key() -> tuple[str, str]:
    key_id = "pk_" + secrets.token_hex(6)
    return key_id, f"{key_id}_{secrets.token_urlsafe(32)}"


def issue_key(session: Session, app_id: int, *, now: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key for the app; the clear key is returned this once and never stored."""
    key_id, api_key = new_key()
    row = ApiKey(app_id=app_id, key_id=key_id, secret_hash=hash_key(api_key))
    row.created_at = now or utcnow()
    session.add(row)
    session.flush()
    return row, api_key


def rotate_keys(
    session: Session, app_id: int, *, overlap_seconds: int, now: datetime | None = None
) -> tuple[ApiKey, str]:
    """Issue a new key; the app's other working keys stop after ``overlap_seconds``."""
    now = now or utcnow()
    until = now + timedelta(seconds=overlap_seconds)
    for row in session.scalars(AppScope(session, app_id).select(ApiKey)):
        if row.is_usable_at(now) and (row.expires_at is None or row.expires_at > until):
            row.expires_at = until
    return issue_key(session, app_id, now=now)


def revoke_key(
    session: Session, app_id: int, key_id: str, *, now: datetime | None = None
) -> ApiKey:
    """Stop a key at once. The app's last working key cannot be revoked: rotate first."""
    now = now or utcnow()
    row = session.scalar(AppScope(session, app_id).select(ApiKey).where(ApiKey.key_id == key_id))
    if row is None:
        raise NotFoundError(f"key {key_id} not found")
    if row.revoked_at is not None:
        return row
    others = [
        k
        for k in session.scalars(AppScope(session, app_id).select(ApiKey))
        if k.id != row.id and k.is_usable_at(now)
    ]
    if not others:
        raise ConflictError(
            f"key {key_id} is the app's only working key: rotate to get a new one, then revoke"
        )
    row.revoked_at = now
    session.flush()
    return row


def list_keys(session: Session, app_id: int) -> list[ApiKey]:
    return list(session.scalars(AppScope(session, app_id).select(ApiKey).order_by(ApiKey.id)))


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """What a request's key says: which app, in which status, usable until when."""

    key_id: str
    app_id: int
    app_status: str
    expires_at: datetime | None


def verify_key(session: Session, api_key: str, *, now: datetime | None = None) -> VerifiedKey:
    """The key's app if the key exists and still works; ``NotFoundError`` otherwise."""
    now = now or utcnow()
    row = session.execute(
        select(ApiKey.key_id, ApiKey.app_id, App.status, ApiKey.expires_at, ApiKey.revoked_at)
        .join(App, App.id == ApiKey.app_id)
        .where(ApiKey.secret_hash == hash_key(api_key))
    ).first()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        raise NotFoundError("no app has this API key")
    return VerifiedKey(row.key_id, row.app_id, row.status, row.expires_at)
