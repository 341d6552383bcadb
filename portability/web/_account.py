"""``/account/apps``: the apps a user granted, what they received, and a Revoke button.

Revoking goes through ``registry.revoke_grant``: the grant's schedules are disabled at once and
a run in flight stops at its next consent check (the engine re-reads consent before every
object write).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portability.categories import Category
from portability.db.models import Access, App, Authorization, Run, RunCategory, Stream
from portability.registry import revoke_grant
from portability.web._context import PageError, WebContext
from portability.web._describe import CATEGORY_TEXT, describe_categories, when
from portability.web._forms import first, read_form
from portability.web._session import PageSession

__all__ = ["ConnectedApp", "add_account_routes", "connected_apps"]

#: ``run_categories.status`` of a stream whose delivery was manifested.
_DELIVERED = "done"


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    authorization_id: int
    app_name: str
    use_case: str
    categories: list[tuple[str, str]]
    is_ongoing: bool
    granted_at: str
    expires_at: str
    last_delivery: str
    delivered: list[tuple[str, int]]
    is_active: bool
    ended: str | None


def connected_apps(session: Session, user_id: str, now: datetime) -> list[ConnectedApp]:
    """The user's grants, newest first, each with its last delivery and records per category."""
    rows = session.execute(
        select(Authorization, App)
        .join(App, App.id == Authorization.app_id)
        .where(Authorization.user_id == user_id)
        .order_by(Authorization.granted_at.desc(), Authorization.id.desc())
    ).all()
    found: list[ConnectedApp] = []
    for grant, app in rows:
        last = session.scalar(
            select(func.max(Stream.last_delivered_at)).where(Stream.authorization_id == grant.id)
        )
        counts = session.execute(
            select(RunCategory.category, func.sum(RunCategory.records))
            .join(Run, Run.id == RunCategory.run_id)
            .where(Run.authorization_id == grant.id, RunCategory.status == _DELIVERED)
            .group_by(RunCategory.category)
        ).all()
        totals = {Category(category): int(total or 0) for category, total in counts}
        delivered = [(CATEGORY_TEXT[c][0], totals[c]) for c in Category if c in totals]
        ended = _ended(grant, now)
        found.append(
            ConnectedApp(
                authorization_id=grant.id,
                app_name=app.name,
                use_case=app.use_case,
                categories=describe_categories(grant.category_set),
                is_ongoing=grant.access == Access.ONGOING,
                granted_at=when(grant.granted_at),
                expires_at=when(grant.expires_at, never="until you revoke it"),
                last_delivery=when(last, never="nothing delivered yet"),
                delivered=delivered,
                is_active=ended is None,
                ended=ended,
            )
        )
    return found


def _ended(grant: Authorization, now: datetime) -> str | None:
    if grant.revoked_at is not None:
        return f"revoked {when(grant.revoked_at)}"
    if grant.expires_at is not None and grant.expires_at <= now:
        return f"expired {when(grant.expires_at)}"
    if grant.access == Access.SINGLE and grant.used_at is not None:
        return f"used once, {when(grant.used_at)}"
    return None


def add_account_routes(router: APIRouter, ctx: WebContext) -> None:
    @router.get("/account/apps", name="web.connected_apps")
    def show(request: Request) -> Response:
        page = ctx.codec.load(request)
        if page.user_id is None:
            return ctx.render(request, page, "signin_needed.html", next_url="/account/apps")
        with ctx.sessions() as session:
            apps = connected_apps(session, page.user_id, ctx.clock())
        revoked = request.query_params.get("revoked")
        revoked_name = next(
            (a.app_name for a in apps if str(a.authorization_id) == revoked and not a.is_active),
            None,
        )
        return ctx.render(
            request,
            page,
            "connected_apps.html",
            active=[a for a in apps if a.is_active],
            past=[a for a in apps if not a.is_active],
            revoked_name=revoked_name,
        )

    @router.post("/account/apps/{authorization_id}/revoke", name="web.revoke")
    async def revoke(request: Request, authorization_id: int) -> Response:
        page = ctx.codec.load(request)
        form = await read_form(request)
        if not page.has_csrf_token(first(form, "csrf_token")):
            raise PageError(
                403, "This form has expired", "Nothing was revoked. Reload the page and try again."
            )
        await run_in_threadpool(_revoke, page, authorization_id)
        return RedirectResponse(f"/account/apps?revoked={authorization_id}", status_code=303)

    def _revoke(page: PageSession, authorization_id: int) -> None:
        if page.user_id is None:
            raise PageError(401, "You are signed out", "Sign in again to manage your apps.")
        with ctx.sessions.begin() as session:
            grant = session.get(Authorization, authorization_id)
            if grant is None or grant.user_id != page.user_id:
                raise PageError(404, "No such app", "This grant is not one of yours.")
            revoke_grant(
                session, grant.id, reason="user revoked on the connected apps page", now=ctx.clock()
            )
