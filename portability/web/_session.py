"""The page session: a signed cookie naming the signed-in user and holding the CSRF token.

The cookie is signed (itsdangerous, with ``Settings.resolved_web_session_key``) and
timestamped, never encrypted: it holds nothing secret but the CSRF token, which is only worth
something together with the cookie itself. It is ``Secure``, ``HttpOnly`` and
``SameSite=Lax``: Lax, not Strict, because the consent flow arrives by a top-level redirect
from the app's site and must find the user still signed in.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE_NAME", "PageSession", "SessionCodec"]

COOKIE_NAME = "portability_session"


@dataclass(frozen=True, slots=True)
class PageSession:
    csrf_token: str
    user_id: str | None = None
    via_dev_login: bool = False

    @classmethod
    def fresh(cls) -> PageSession:
        return cls(csrf_token=secrets.token_urlsafe(32))

    def signed_in(self, user_id: str, *, via_dev_login: bool = False) -> PageSession:
        """A new session for ``user_id``, with a new CSRF token (no fixation across users)."""
        return replace(PageSession.fresh(), user_id=user_id, via_dev_login=via_dev_login)

    def has_csrf_token(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token, token or "")


class SessionCodec:
    def __init__(self, key: bytes, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="portability.web.session")
        self._max_age = max_age_seconds

    def load(self, request: Request) -> PageSession:
        raw = request.cookies.get(COOKIE_NAME)
        if not raw:
            return PageSession.fresh()
        try:
            data = self._serializer.loads(raw, max_age=self._max_age)
        except BadSignature:
            return PageSession.fresh()
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return PageSession.fresh()
        user = data.get("u")
        return PageSession(
            csrf_token=data["c"],
            user_id=user if isinstance(user, str) else None,
            via_dev_login=bool(data.get("d")),
        )

    def save(self, response: Response, session: PageSession) -> None:
        value = self._serializer.dumps(
            {"c": session.csrf_token, "u": session.user_id, "d": session.via_dev_login}
        )
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=self._max_age,
            path="/",
            secure=True,
            httponly=True,
            samesite="lax",
        )
