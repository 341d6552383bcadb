"""Signing in: by the platform's signed assertion, or (demo and tests only) by typing a user id.

``POST /session`` (or ``GET /session``) with ``assertion`` (a JWT, see ``_identity``) and
``next`` (a path here) signs the user in and records the country the platform vouches for.
``/dev/login`` exists only while ``Settings.web_dev_login`` is on; every page then says so.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portability.errors import ValidationError
from portability.registry import upsert_user
from portability.web._context import PageError, WebContext
from portability.web._forms import Params, first, query_params, read_form, safe_next
from portability.web._identity import Identity, verify_assertion
from portability.web._session import PageSession

__all__ = ["add_signin_routes"]

HOME = "/account/apps"


def add_signin_routes(router: APIRouter, ctx: WebContext) -> None:
    def sign_in(page: PageSession, identity: Identity, next_url: str, *, dev: bool) -> Response:
        try:
            with ctx.sessions.begin() as session:
                upsert_user(session, user_id=identity.user_id, country=identity.country)
        except ValidationError as exc:
            raise PageError(400, "You could not be signed in", str(exc)) from None
        response = RedirectResponse(next_url, status_code=303)
        ctx.codec.save(response, page.signed_in(identity.user_id, via_dev_login=dev))
        return response

    def from_assertion(request: Request, params: Params) -> Response:
        token = first(params, "assertion")
        if not token:
            raise PageError(400, "You could not be signed in", "No identity assertion was sent.")
        try:
            identity = verify_assertion(ctx.settings, token)
        except ValidationError as exc:
            raise PageError(401, "You could not be signed in", str(exc)) from None
        next_url = safe_next(first(params, "next"), HOME)
        return sign_in(ctx.codec.load(request), identity, next_url, dev=False)

    @router.get("/session", name="web.session_from_link")
    def session_from_link(request: Request) -> Response:
        return from_assertion(request, query_params(request))

    @router.post("/session", name="web.session")
    async def session_from_form(request: Request) -> Response:
        # No CSRF token here: the signed assertion is itself the proof of who sends it.
        form = await read_form(request)
        return await run_in_threadpool(from_assertion, request, form)

    @router.post("/session/end", name="web.sign_out")
    async def sign_out(request: Request) -> Response:
        page = ctx.codec.load(request)
        form = await read_form(request)
        if not page.has_csrf_token(first(form, "csrf_token")):
            raise PageError(403, "This form has expired", "Reload the page and try again.")
        response = RedirectResponse(HOME, status_code=303)
        ctx.codec.save(response, PageSession.fresh())
        return response

    if not ctx.settings.web_dev_login:
        return

    @router.get("/dev/login", name="web.dev_login")
    def dev_login_form(request: Request) -> Response:
        page = ctx.codec.load(request)
        next_url = safe_next(request.query_params.get("next"), HOME)
        return ctx.render(request, page, "dev_login.html", next_url=next_url)

    @router.post("/dev/login", name="web.dev_login_submit")
    async def dev_login(request: Request) -> Response:
        page = ctx.codec.load(request)
        form = await read_form(request)
        if not page.has_csrf_token(first(form, "csrf_token")):
            raise PageError(403, "This form has expired", "Reload the page and try again.")
        identity = Identity(
            user_id=(first(form, "user_id") or "").strip(),
            country=(first(form, "country") or "").strip().upper(),
        )
        next_url = safe_next(first(form, "next"), HOME)
        return await run_in_threadpool(sign_in, page, identity, next_url, dev=True)
