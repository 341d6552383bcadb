"""``/internal/users/{user_id}/exports``: "download your data" for the platform, with its
service token. The platform asks on a user's behalf; every route names the user, and an
export of another user answers 404, like one that does not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from portability.api._auth import PlatformCaller
from portability.api._context import Ctx
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES, problem
from portability.api._types import PathId
from portability.api.internal import UserId
from portability.api.transfers import Categories, category_text
from portability.db.base import utcnow
from portability.errors import ConfigurationError
from portability.user_exports import (
    UserExport,
    discard_archive,
    download_links,
    lifecycle,
    open_export_bucket,
)

__all__ = ["UserExportOut", "router"]

router = APIRouter(
    prefix="/internal/users/{user_id}/exports",
    tags=["internal"],
    responses=PROBLEM_RESPONSES,
)


def _unavailable(exc: ConfigurationError) -> JSONResponse:
    """409 ``downloads-unavailable``: this server's state (no export bucket) refuses it."""
    return problem(409, "downloads-unavailable", "Downloads are not set up", str(exc))


class UserExportIn(BaseModel):
    categories: Categories = "all"
    format: Literal["json", "text"] = Field(
        default="json", description="json: JSON Lines per category; text: readable HTML pages."
    )


class UserExportOut(BaseModel):
    id: int
    user_id: str
    categories: list[str]
    format: str
    status: Literal["queued", "running", "ready", "failed", "cancelled", "expired", "deleted"]
    progress: int = Field(description="Records written so far.")
    records: int | None
    size_bytes: int | None = Field(description="Bytes of every volume, once ready.")
    volumes: int | None
    error: str | None
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="When the archive is deleted.")

    @classmethod
    def of(cls, row: UserExport) -> UserExportOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            categories=[c.value for c in row.category_list],
            format=row.format,
            status=row.status,
            progress=row.progress,
            records=row.records,
            size_bytes=row.size_bytes,
            volumes=row.volumes,
            error=row.error,
            requested_by=row.requested_by,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            expires_at=row.expires_at,
        )


class DownloadLinkOut(BaseModel):
    volume: int
    filename: str
    url: str = Field(description="A presigned GET of the volume; no credential needed.")
    expires_at: datetime


class DownloadLinksOut(BaseModel):
    export_id: int
    links: list[DownloadLinkOut]


@router.post(
    "",
    status_code=201,
    response_model=UserExportOut,
    summary="Request an export of the user's own data",
)
def request(
    user_id: UserId, body: UserExportIn, _caller: PlatformCaller, ctx: Ctx
) -> UserExportOut | JSONResponse:
    """Any country may ask. Refused with 409 `downloads-unavailable` while the operator has
    set no export bucket, with 409 `conflict` while another export of the user is
    queued or running, and with 429 `rate-limited` past the per-user rate limit
    (`Retry-After` says when the next may be asked)."""
    try:
        with ctx.writing() as session:
            row = lifecycle.request_export(
                session,
                ctx.settings,
                user_id=user_id,
                categories=category_text(body.categories),
                fmt=body.format,
                now=utcnow(),
            )
            return UserExportOut.of(row)
    except ConfigurationError as exc:
        return _unavailable(exc)


@router.get("", summary="A user's exports, newest first")
def list_(
    user_id: UserId, _caller: PlatformCaller, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> Page[UserExportOut]:
    with ctx.reading() as session:
        query = select(UserExport).where(UserExport.user_id == user_id)
        return paginate(
            session, query, UserExport.id, cursor=cursor, limit=limit, convert=UserExportOut.of
        )


@router.get("/{export_id}", summary="One export: status, progress and size")
def show(user_id: UserId, export_id: PathId, _caller: PlatformCaller, ctx: Ctx) -> UserExportOut:
    with ctx.reading() as session:
        return UserExportOut.of(lifecycle.get_export(session, export_id, user_id=user_id))


@router.post(
    "/{export_id}/links",
    response_model=DownloadLinksOut,
    summary="Fresh download links of a ready export",
)
def links(
    user_id: UserId, export_id: PathId, _caller: PlatformCaller, ctx: Ctx
) -> DownloadLinksOut | JSONResponse:
    """One presigned URL per volume; 409 unless the export is ready."""
    with ctx.reading() as session:
        row = lifecycle.get_export(session, export_id, user_id=user_id)
        try:
            bucket = open_export_bucket(ctx.settings)
        except ConfigurationError as exc:
            return _unavailable(exc)
        found = download_links(bucket, row, ctx.settings, now=utcnow())
    return DownloadLinksOut(
        export_id=export_id,
        links=[
            DownloadLinkOut(
                volume=link.volume, filename=link.filename, url=link.url, expires_at=link.expires_at
            )
            for link in found
        ],
    )


@router.post("/{export_id}/cancel", summary="Cancel a queued or running export")
def cancel(user_id: UserId, export_id: PathId, _caller: PlatformCaller, ctx: Ctx) -> UserExportOut:
    """409 when the export has already ended."""
    with ctx.writing() as session:
        if not lifecycle.cancel_export(session, export_id, user_id=user_id, now=utcnow()):
            row = lifecycle.get_export(session, export_id, user_id=user_id)
            raise lifecycle.not_cancellable(row)
        return UserExportOut.of(lifecycle.get_export(session, export_id, user_id=user_id))


@router.delete("/{export_id}", status_code=204, summary="Delete an export and its archive")
def delete(user_id: UserId, export_id: PathId, _caller: PlatformCaller, ctx: Ctx) -> Response:
    with ctx.writing() as session:
        keys = lifecycle.delete_export(session, export_id, user_id=user_id, now=utcnow())
    if ctx.settings.user_export_bucket:
        discard_archive(open_export_bucket(ctx.settings), export_id, keys)
    return Response(status_code=204)
