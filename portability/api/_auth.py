"""Who is calling: an app by its API key, or the platform by its service token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from portability.api._context import ApiContext, Ctx
from portability.api._problems import AppNotApprovedError
from portability.errors import AuthenticationError, NotFoundError, RateLimitedError
from portability.keys import VerifiedKey, hash_key, verify_key

__all__ = ["AppCaller", "Caller", "PlatformCaller"]

_service = HTTPBearer(
    auto_error=False, scheme_name="ServiceToken", description="The platform's service token."
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The app a request acts for, and the key it used (its visible id only)."""

    app_id: int
    key_id: str


async def _verified(ctx: ApiContext, token: str) -> VerifiedKey:
    key_hash = hash_key(token)
    cached = ctx.keys.get(key_hash)
    if cached is not None:
        return cached

    def lookup() -> VerifiedKey:
        with ctx.reading() as session:
            return verify_key(session, token)

    try:
        verified = await run_in_threadpool(lookup)
    except NotFoundError:
        raise AuthenticationError("API key is unknown, revoked or expired") from None
    ctx.keys.put(key_hash, verified)
    return verified


class _AppKey(HTTPBearer):
    """The app behind the request's key: one dependency (FastAPI documents it as the bearer
    scheme) that authenticates, checks the app's status and counts the request."""

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        ctx: ApiContext = request.app.state.context
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing API key: send `Authorization: Bearer <key>`")
        verified = await _verified(ctx, token.strip())
        if verified.app_status == "pending":
            raise AppNotApprovedError(
                f"app {verified.app_id} is awaiting review: staff will approve or reject it; "
                "until then every call but applying answers 403",
                kind="awaiting-review",
            )
        if verified.app_status != "approved":
            raise AppNotApprovedError(
                f"app {verified.app_id} is {verified.app_status}: contact the platform's staff",
                kind="app-not-approved",
            )
        limiter = ctx.limiter()
        retry_after = await limiter.hit(verified.app_id)
        if retry_after is not None:
            raise RateLimitedError(
                f"app {verified.app_id} made more than {limiter.limit} requests in the "
                f"current window: retry after {retry_after} s",
                retry_after=retry_after,
            )
        return Caller(verified.app_id, verified.key_id)


_app_key = _AppKey(scheme_name="HTTPBearer", description="An app's API key: `pk_<id>_<secret>`.")


async def _platform_caller(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service)]
) -> None:
    expected = ctx.settings.api_service_token
    if expected is None or not expected.get_secret_value():
        raise AuthenticationError("the internal API is off: set PORTABILITY_API_SERVICE_TOKEN")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise AuthenticationError("missing or wrong service token")


AppCaller = Annotated[Caller, Depends(_app_key)]
PlatformCaller = Annotated[None, Depends(_platform_caller)]
