"""``/oauth/authorize``: the consent page (GET) and the user's decision (POST).

Errors before the redirect URI is verified, a user outside the eligible countries and an app
staff have not approved get a page; every other error goes back to the app's verified URI
(RFC 6749 section 4.1.2.1). The decision form carries the request's parameters and is checked
again as a whole, with the CSRF token of the user's session.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portability.db.models import Access, PlatformUser
from portability.errors import OAuthError, ValidationError
from portability.oauth import AuthorizationRequest, allow, check_authorization_request
from portability.web._context import PageError, WebContext
from portability.web._describe import describe_categories
from portability.web._forms import Params, first, query_params, read_form
from portability.web._session import PageSession

__all__ = ["EXPIRY_CHOICES", "add_consent_routes"]

#: What a user may choose for ongoing access: (form value, days or None, label).
EXPIRY_CHOICES: list[tuple[str, int | None, str]] = [
    ("30", 30, "for 30 days"),
    ("90", 90, "for 90 days"),
    ("365", 365, "for one year"),
    ("never", None, "until I revoke it"),
]


def redirect_to_app(
    uri: str, params: dict[str, str], state: str | None, *, status: int = 303
) -> RedirectResponse:
    """Send the browser to the app's (verified) redirect URI with ``params`` added to its
    query (RFC 6749 section 4.1.2: the query component is retained)."""
    if state is not None:
        params = {**params, "state": state}
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return RedirectResponse(
        urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), status_code=status
    )


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def add_consent_routes(router: APIRouter, ctx: WebContext) -> None:
    def checked(session: Session, params: Params) -> AuthorizationRequest:
        try:
            return check_authorization_request(session, params)
        except OAuthError as exc:
            if exc.redirect_uri is None:
                raise PageError(
                    400, "This request to share your data is not valid", str(exc)
                ) from None
            raise

    def eligible_user(session: Session, page: PageSession) -> PlatformUser | None:
        if page.user_id is None:
            return None
        user = session.get(PlatformUser, page.user_id)
        if user is None:
            return None
        if user.country not in ctx.settings.eligible_countries:
            raise PageError(
                403,
                "Data portability is not available in your country",
                f"Your account is registered in {user.country}. Sharing your data with other "
                "apps is offered only to users in the European Economic Area. Nothing was "
                "shared and the app was not told anything.",
            )
        return user

    @router.get("/oauth/authorize", name="web.authorize")
    def show_consent(request: Request) -> Response:
        page = ctx.codec.load(request)
        with ctx.sessions() as session:
            try:
                auth = checked(session, query_params(request))
            except OAuthError as exc:
                return _error_redirect(exc, status=302)
            user = eligible_user(session, page)
        if user is None:
            return ctx.render(request, page, "signin_needed.html", next_url=_here(request))
        request.state.form_action = [_origin(auth.redirect_uri)]
        return ctx.render(
            request,
            page,
            "consent.html",
            auth=auth,
            params=auth.as_params(),
            categories=describe_categories(auth.scope.categories),
            is_ongoing=auth.scope.access == Access.ONGOING,
            expiry_choices=EXPIRY_CHOICES,
        )

    @router.post("/oauth/authorize", name="web.decide")
    async def decide(request: Request) -> Response:
        page = ctx.codec.load(request)
        form = await read_form(request)
        if not page.has_csrf_token(first(form, "csrf_token")):
            raise PageError(
                403,
                "This form has expired",
                "The form was not sent from this page, or your session changed. Nothing was "
                "shared. Go back to the app and start again.",
            )
        return await run_in_threadpool(_decide, page, form)

    def _decide(page: PageSession, form: Params) -> Response:
        decision = first(form, "decision")
        request_params = {k: v for k, v in form.items() if k not in _FORM_ONLY}
        with ctx.sessions.begin() as session:
            try:
                auth = checked(session, request_params)
            except OAuthError as exc:
                return _error_redirect(exc, status=303)
            user = eligible_user(session, page)
            if user is None:
                raise PageError(401, "You are signed out", "Sign in again, then start over.")
            if decision == "deny":
                return redirect_to_app(
                    auth.redirect_uri,
                    {"error": "access_denied", "error_description": "the user declined"},
                    auth.state,
                )
            if decision != "allow":
                raise PageError(400, "Choose Allow or Deny", "The form had no decision.")
            now = ctx.clock()
            expires_at = None
            if auth.scope.access == Access.ONGOING:
                days = {value: d for value, d, _label in EXPIRY_CHOICES}
                choice = first(form, "expiry") or "never"
                if choice not in days:
                    raise PageError(400, "Choose how long", f"{choice!r} is not a choice.")
                chosen = days[choice]
                expires_at = now + timedelta(days=chosen) if chosen is not None else None
            try:
                code = allow(
                    session,
                    auth,
                    user_id=user.id,
                    eligible_countries=ctx.settings.eligible_countries,
                    now=now,
                    expires_at=expires_at,
                )
            except ValidationError as exc:
                raise PageError(403, "This app cannot be granted access", str(exc)) from None
        return redirect_to_app(auth.redirect_uri, {"code": code}, auth.state)


_FORM_ONLY = frozenset({"csrf_token", "decision", "expiry"})


def _error_redirect(exc: OAuthError, *, status: int) -> RedirectResponse:
    assert exc.redirect_uri is not None
    return redirect_to_app(
        exc.redirect_uri,
        {"error": exc.error, "error_description": str(exc)},
        exc.state,
        status=status,
    )


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
