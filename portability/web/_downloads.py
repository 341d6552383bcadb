"""``/account/download``: "download your data". The user picks categories and a format,
requests an archive, watches its progress and downloads it while it is ready.

Every write goes through ``portability.user_exports.lifecycle``, which holds the guards (one
export in progress, the rate limit). The page refreshes itself (``<meta http-equiv=refresh>``)
while an export runs, and has a Refresh link: no JavaScript is needed. Another user's export
id answers 404, as an unknown one does.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portability.categories import Category
from portability.db.base import MAX_ID
from portability.errors import ConflictError, RateLimitedError, ValidationError
from portability.user_exports import (
    DownloadLink,
    ExportStatus,
    UserExport,
    discard_archive,
    download_links,
    lifecycle,
    open_export_bucket,
)
from portability.web._context import PageError, WebContext
from portability.web._describe import CATEGORY_TEXT, when
from portability.web._forms import Params, first, read_form
from portability.web._session import PageSession

__all__ = ["ExportView", "add_download_routes"]

PATH = "/account/download"
#: The answer when a request is refused: the page again, saying why.
_STATUS: dict[type[Exception], int] = {ConflictError: 409, RateLimitedError: 429}
#: Seconds between the page's own reloads while an export is in progress.
REFRESH_SECONDS = 3


@dataclass(frozen=True)
class ExportView:
    id: int
    status: str
    categories: str
    format: str
    progress: int
    requested_at: str
    size: str
    ends: str
    error: str | None
    links: list[DownloadLink]

    @property
    def is_active(self) -> bool:
        return self.status in {ExportStatus.QUEUED, ExportStatus.RUNNING}


def _size(size: int | None) -> str:
    if size is None:
        return ""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _view(row: UserExport, links: list[DownloadLink]) -> ExportView:
    names = ", ".join(CATEGORY_TEXT[c][0] for c in row.category_list)
    ends = when(row.expires_at) if row.expires_at else ""
    return ExportView(
        id=row.id,
        status=row.status,
        categories=names,
        format="Readable pages (HTML)" if row.format == "text" else "JSON",
        progress=row.progress,
        requested_at=when(row.created_at),
        size=_size(row.size_bytes),
        ends=ends,
        error=row.error if row.status == ExportStatus.FAILED else None,
        links=links,
    )


def _refusal(exc: Exception) -> int:
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 422)


def add_download_routes(router: APIRouter, ctx: WebContext) -> None:
    def exports_of(user_id: str) -> list[ExportView]:
        with ctx.sessions() as session:
            rows = lifecycle.list_exports(session, user_id, limit=20)
            bucket = None
            views = []
            for row in rows:
                links: list[DownloadLink] = []
                if row.status == ExportStatus.READY and row.object_keys:
                    bucket = bucket or open_export_bucket(ctx.settings)
                    links = download_links(bucket, row, ctx.settings, now=ctx.clock())
                views.append(_view(row, links))
            return views

    def render(
        request: Request,
        page: PageSession,
        *,
        status: int = 200,
        problem: str = "",
        chosen: Params | None = None,
    ) -> Response:
        exports = exports_of(page.user_id or "")
        picked = set((chosen or {}).get("categories", []))
        return ctx.render(
            request,
            page,
            "download.html",
            status=status,
            exports=exports,
            categories=[(c.value, *CATEGORY_TEXT[c]) for c in Category],
            picked=picked,
            problem=problem,
            is_configured=bool(ctx.settings.user_export_bucket),
            refresh=REFRESH_SECONDS if any(e.is_active for e in exports) else None,
            message=request.query_params.get("done", ""),
        )

    @router.get(PATH, name="web.download")
    async def show(request: Request) -> Response:
        page = ctx.codec.load(request)
        if page.user_id is None:
            return ctx.render(request, page, "signin_needed.html", next_url=PATH)
        return await run_in_threadpool(render, request, page)

    @router.post(PATH, name="web.download.request")
    async def request_export(request: Request) -> Response:
        page, user_id, form = await _checked(request, ctx, "No export was requested.")
        categories = form.get("categories", [])
        if "all" in categories:
            categories = ["all"]
        try:
            await run_in_threadpool(_request, user_id, categories, first(form, "format"))
        except (ConflictError, RateLimitedError, ValidationError) as exc:
            status, problem = _refusal(exc), str(exc)
            return await run_in_threadpool(
                lambda: render(request, page, status=status, problem=problem, chosen=form)
            )
        return RedirectResponse(f"{PATH}?done=requested", status_code=303)

    def _request(user_id: str, categories: list[str], fmt: str | None) -> None:
        if not categories:
            raise ValidationError("Choose at least one kind of data, or All of it.")
        with ctx.sessions.begin() as session:
            lifecycle.request_export(
                session,
                ctx.settings,
                user_id=user_id,
                categories=categories,
                fmt=fmt or "json",
                now=ctx.clock(),
            )

    @router.post(PATH + "/{export_id}/cancel", name="web.download.cancel")
    async def cancel(request: Request, export_id: int) -> Response:
        _, user_id, _ = await _checked(request, ctx, "Nothing was cancelled.")
        await run_in_threadpool(_cancel, user_id, export_id)
        return RedirectResponse(f"{PATH}?done=cancelled", status_code=303)

    def _cancel(user_id: str, export_id: int) -> None:
        with ctx.sessions.begin() as session:
            _own(session, user_id, export_id)
            lifecycle.cancel_export(session, export_id, user_id=user_id, now=ctx.clock())

    @router.post(PATH + "/{export_id}/delete", name="web.download.delete")
    async def delete(request: Request, export_id: int) -> Response:
        _, user_id, _ = await _checked(request, ctx, "Nothing was deleted.")
        await run_in_threadpool(_delete, user_id, export_id)
        return RedirectResponse(f"{PATH}?done=deleted", status_code=303)

    def _delete(user_id: str, export_id: int) -> None:
        with ctx.sessions.begin() as session:
            _own(session, user_id, export_id)
            keys = lifecycle.delete_export(session, export_id, user_id=user_id, now=ctx.clock())
        if ctx.settings.user_export_bucket:
            discard_archive(open_export_bucket(ctx.settings), export_id, keys)


def _own(session: Session, user_id: str, export_id: int) -> None:
    """A page saying "no such export" unless the export is the user's."""
    row = session.get(UserExport, export_id) if 1 <= export_id <= MAX_ID else None
    if row is None or row.user_id != user_id:
        raise PageError(404, "No such export", "This export is not one of yours.")


async def _checked(
    request: Request, ctx: WebContext, nothing_done: str
) -> tuple[PageSession, str, Params]:
    """The session, its user and the form, once the CSRF token and the sign-in are checked."""
    page = ctx.codec.load(request)
    form = await read_form(request)
    if not page.has_csrf_token(first(form, "csrf_token")):
        raise PageError(
            403, "This form has expired", f"{nothing_done} Reload the page and try again."
        )
    if page.user_id is None:
        raise PageError(401, "You are signed out", "Sign in again to download your data.")
    return page, page.user_id, form
