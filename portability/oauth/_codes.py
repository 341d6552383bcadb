"""Authorization codes: issued when the user allows, redeemed once by the app with its verifier.

A code is 256 random bits shown once (in the redirect) and stored as its SHA-256, so a copy of
the database redeems nothing. It lives ``CODE_LIFETIME`` and is consumed by the first
presentation from its own app, whatever the outcome; a second presentation is refused and, as
RFC 6749 section 4.1.2 asks, revokes the grant the first one delivered (the code may have been
stolen).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from portability.db.models import App, Authorization, OAuthCode
from portability.errors import OAuthError
from portability.oauth._pkce import verify
from portability.oauth._request import AuthorizationRequest
from portability.oauth._scopes import scope_for
from portability.registry import grant, revoke_grant

__all__ = ["CODE_LIFETIME", "Redemption", "allow", "redeem"]

CODE_LIFETIME = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Redemption:
    """A redeemed code: the grant the app may now use, and the scope it covers."""

    authorization: Authorization
    scope: str


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def allow(
    session: Session,
    request: AuthorizationRequest,
    *,
    user_id: str,
    eligible_countries: Set[str],
    now: datetime,
    expires_at: datetime | None = None,
) -> str:
    """Record the user's grant (through ``registry.grant`` and all its checks) and return the
    code to send to the app. Single access never expires by date: it is used once."""
    authorization = grant(
        session,
        user_id=user_id,
        app_id=request.app_id,
        categories=request.scope.categories,
        access=request.scope.access,
        eligible_countries=eligible_countries,
        expires_at=expires_at,
        now=now,
    )
    code = secrets.token_urlsafe(32)
    session.add(
        OAuthCode(
            code_hash=_hash(code),
            app_id=request.app_id,
            authorization_id=authorization.id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            scope=request.scope.scope,
            issued_at=now,
            expires_at=now + CODE_LIFETIME,
        )
    )
    session.flush()
    return code


def redeem(
    session: Session,
    *,
    app: App,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    now: datetime,
) -> Redemption:
    """Exchange a code for its grant (RFC 6749 section 4.1.3, RFC 7636 section 4.6).

    Raises ``OAuthError``; the caller must commit even then: the code is consumed by its first
    presentation, and a replayed code revokes its grant.
    """
    if not code:
        raise OAuthError("invalid_request", "code is required")
    row = session.get(OAuthCode, _hash(code))
    if row is None or row.app_id != app.id:
        # Another app's code is as unknown to this app as a made-up one.
        raise OAuthError("invalid_grant", "the code is not valid")
    if row.redeemed_at is not None:
        revoke_grant(
            session,
            row.authorization_id,
            reason="its authorization code was presented twice",
            now=now,
        )
        raise OAuthError(
            "invalid_grant", "the code was already used; the grant it gave has been revoked"
        )
    consumed = session.execute(
        update(OAuthCode)
        .where(OAuthCode.code_hash == row.code_hash, OAuthCode.redeemed_at.is_(None))
        .values(redeemed_at=now)
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise OAuthError("invalid_grant", "the code was already used")
    if now >= row.expires_at:
        raise OAuthError("invalid_grant", "the code has expired: codes are valid for 60 s")
    if not redirect_uri:
        raise OAuthError("invalid_request", "redirect_uri is required")
    if redirect_uri != row.redirect_uri:
        raise OAuthError(
            "invalid_grant", "redirect_uri differs from the one the code was issued to"
        )
    verify(code_verifier, row.code_challenge)
    authorization = session.get(Authorization, row.authorization_id)
    assert authorization is not None  # a foreign key
    if authorization.revoked_at is not None:
        raise OAuthError("invalid_grant", "the user has revoked this grant")
    return Redemption(authorization, scope_for(authorization.category_set, authorization.access))
