"""``POST /oauth/token``: the app exchanges a code and its PKCE verifier for the grant.

The app authenticates with its API key, in exactly one way (RFC 6749 section 2.3): ``Bearer``,
HTTP Basic with ``client_id:api_key`` (``client_secret_basic``), or ``client_id`` and
``client_secret`` in the form (``client_secret_post``). Errors are JSON as in section 5.2.

The answer is not an access token: the app acts with its API key on the grant whose id it is
given, and knows the user by the pseudonym its deliveries carry.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portability.db.models import App
from portability.errors import NotFoundError, OAuthError, ValidationError
from portability.oauth import redeem
from portability.pseudonyms import Pseudonymizer
from portability.registry import app_for_api_key
from portability.web._context import WebContext
from portability.web._forms import Params, first, read_form

__all__ = ["add_token_route"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(exc: OAuthError, *, basic: bool = False) -> JSONResponse:
    status = 401 if exc.error == "invalid_client" else 400
    headers = dict(_NO_STORE)
    if status == 401 and basic:
        headers["WWW-Authenticate"] = 'Basic realm="portability"'
    return JSONResponse(
        {"error": exc.error, "error_description": str(exc)}, status_code=status, headers=headers
    )


def _credentials(request: Request, form: Params) -> tuple[str | None, str, bool]:
    """(client_id or None, API key, whether HTTP Basic was used)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    methods: list[tuple[str | None, str, bool]] = []
    if scheme.lower() == "bearer" and value.strip():
        methods.append((None, value.strip(), False))
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
            basic_id, _, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "the Basic credentials are malformed") from None
        methods.append((unquote(basic_id), unquote(secret), True))
    elif header:
        raise OAuthError("invalid_client", f"authorization scheme {scheme!r} is not supported")
    if first(form, "client_secret"):
        methods.append((first(form, "client_id"), first(form, "client_secret") or "", False))
    if len(methods) > 1:
        raise OAuthError("invalid_request", "authenticate in one way only (RFC 6749 2.3)")
    if not methods:
        raise OAuthError("invalid_client", "authenticate with the app's API key")
    client_id, key, basic = methods[0]
    form_client = first(form, "client_id")
    if client_id is None:
        client_id = form_client
    elif form_client is not None and form_client != client_id:
        raise OAuthError("invalid_request", "client_id differs from the authenticated one")
    return client_id, key, basic


def add_token_route(router: APIRouter, ctx: WebContext) -> None:
    def exchange(request: Request, form: Params) -> Response:
        basic = request.headers.get("authorization", "").lower().startswith("basic")
        session = ctx.sessions()
        try:
            repeated = [name for name, values in form.items() if len(values) > 1]
            if repeated:
                raise OAuthError("invalid_request", f"{repeated[0]} is given more than once")
            client_id, key, basic = _credentials(request, form)
            app = _authenticate(session, client_id, key)
            grant_type = first(form, "grant_type")
            if not grant_type:
                raise OAuthError("invalid_request", "grant_type is required")
            if grant_type != "authorization_code":
                raise OAuthError(
                    "unsupported_grant_type", "only grant_type=authorization_code is supported"
                )
            redemption = redeem(
                session,
                app=app,
                code=first(form, "code"),
                redirect_uri=first(form, "redirect_uri"),
                code_verifier=first(form, "code_verifier"),
                now=ctx.clock(),
            )
            body = _answer(ctx, app, redemption.authorization, redemption.scope)
            session.commit()
        except OAuthError as exc:
            session.commit()  # a presented code stays consumed; a replay's revocation stays
            return _error(exc, basic=basic)
        finally:
            session.close()
        return JSONResponse(body, headers=_NO_STORE)

    @router.post("/oauth/token", name="web.token")
    async def token(request: Request) -> Response:
        try:
            form = await read_form(request)
        except ValidationError as exc:
            return _error(OAuthError("invalid_request", str(exc)))
        return await run_in_threadpool(exchange, request, form)


def _authenticate(session: Any, client_id: str | None, key: str) -> App:
    try:
        app = app_for_api_key(session, key)
    except NotFoundError:
        raise OAuthError("invalid_client", "the API key is not valid") from None
    if client_id is not None and client_id != str(app.id):
        raise OAuthError("invalid_client", "client_id does not belong to this API key")
    return app


def _answer(ctx: WebContext, app: App, authorization: Any, scope: str) -> dict[str, Any]:
    key = ctx.settings.resolved_pseudonym_key()
    return {
        "authorization_id": authorization.id,
        "user": Pseudonymizer(key, app.id, authorization.user_id).owner_pseudonym,
        "scope": scope,
        "categories": sorted(authorization.category_set),
        "access": authorization.access,
        "granted_at": authorization.granted_at.isoformat(),
        "expires_at": authorization.expires_at.isoformat() if authorization.expires_at else None,
    }
