"""``/v1/destinations``: the app's buckets. Created and re-keyed only after a probe object was
written, read back and deleted with the given keys; secrets are never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.orm import Session

from portability.api._auth import AppCaller
from portability.api._context import ApiContext, Ctx
from portability.api._idempotency import IdempotencyKey, create_once
from portability.api._pagination import Cursor, Limit, Page, paginate
from portability.api._problems import PROBLEM_RESPONSES
from portability.api._types import PathId, Text
from portability.db.models import Destination
from portability.destinations.s3 import S3Config
from portability.registry import (
    add_destination,
    delete_destination,
    destination_credentials,
    replace_destination_credentials,
)
from portability.scope import AppScope

router = APIRouter(prefix="/v1/destinations", tags=["destinations"], responses=PROBLEM_RESPONSES)

Secret = Annotated[SecretStr, Field(min_length=1, max_length=256)]


class DestinationIn(BaseModel):
    name: Annotated[str, Text(200, 1)] = "default"
    endpoint_url: Annotated[str, Text(500)] | None = Field(
        default=None, description="S3-compatible endpoint; omit for AWS S3."
    )
    region: Annotated[str, Text(64, 1)] = "us-east-1"
    bucket: Annotated[str, Text(63, 3)]
    prefix: Annotated[str, Text(500)] = ""
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    server_side_encryption: Literal["AES256", "aws:kms"] | None = None
    compression: Literal["gzip", "zstd", "none"] = "gzip"
    access_key_id: Secret
    secret_access_key: Secret


class CredentialsIn(BaseModel):
    access_key_id: Secret
    secret_access_key: Secret


class DestinationOut(BaseModel):
    """A destination as stored, without its credentials."""

    id: int
    name: str
    endpoint_url: str | None
    region: str
    bucket: str
    prefix: str
    addressing_style: str
    server_side_encryption: str | None
    compression: str
    created_at: datetime

    @classmethod
    def of(cls, row: Destination) -> DestinationOut:
        return cls(
            id=row.id,
            name=row.name,
            endpoint_url=row.endpoint_url,
            region=row.region,
            bucket=row.bucket,
            prefix=row.prefix,
            addressing_style=row.addressing_style,
            server_side_encryption=row.server_side_encryption,
            compression=row.compression,
            created_at=row.created_at,
        )


def _test(ctx: ApiContext, row: Destination) -> None:
    """The connection test, with the keys just sealed into ``row`` (opened in memory). The
    endpoint already passed the network policy in ``add_destination``; the S3 client checks
    it again when it connects."""
    keys = destination_credentials(ctx.box, row)
    ctx.probe(
        S3Config(
            bucket=row.bucket,
            access_key_id=keys["access_key_id"],
            secret_access_key=keys["secret_access_key"],
            endpoint_url=row.endpoint_url,
            region=row.region,
            addressing_style=row.addressing_style,
            server_side_encryption=row.server_side_encryption,
            checksum_mode=ctx.settings.s3_checksum_mode,
            max_attempts=1,
            connect_timeout=3.0,
            read_timeout=10.0,
        )
    )


@router.post("", status_code=201, response_model=DestinationOut, summary="Register a bucket")
def create(
    body: DestinationIn, request: Request, caller: AppCaller, ctx: Ctx, key: IdempotencyKey = None
) -> Response:
    """Refused (422 `destination-test-failed`, with the reason) unless a probe object can be
    written, read back and deleted under `.portability-probe/` with these keys."""

    def make(session: Session) -> tuple[BaseModel, list[int]]:
        row = add_destination(
            session,
            ctx.box,
            app_id=caller.app_id,
            name=body.name,
            endpoint_url=body.endpoint_url,
            region=body.region,
            bucket=body.bucket,
            prefix=body.prefix,
            addressing_style=body.addressing_style,
            server_side_encryption=body.server_side_encryption,
            compression=body.compression,
            access_key_id=body.access_key_id.get_secret_value(),
            secret_access_key=body.secret_access_key.get_secret_value(),
            endpoint_policy=ctx.settings.endpoint_policy,
        )
        _test(ctx, row)
        return DestinationOut.of(row), []

    return create_once(ctx, request, owner=caller.app_id, key=key, body=body, create=make)


@router.get("", summary="The app's destinations, newest first")
def list_destinations(
    caller: AppCaller, ctx: Ctx, cursor: Cursor = None, limit: Limit = 50
) -> Page[DestinationOut]:
    with ctx.reading() as session:
        query = AppScope(session, caller.app_id).select(Destination)
        return paginate(
            session, query, Destination.id, cursor=cursor, limit=limit, convert=DestinationOut.of
        )


@router.get("/{destination_id}", summary="One destination (never its keys)")
def show(destination_id: PathId, caller: AppCaller, ctx: Ctx) -> DestinationOut:
    with ctx.reading() as session:
        return DestinationOut.of(AppScope(session, caller.app_id).get(Destination, destination_id))


@router.put("/{destination_id}/credentials", summary="Replace the keys (tested first)")
def rotate_credentials(
    destination_id: PathId, body: CredentialsIn, caller: AppCaller, ctx: Ctx
) -> DestinationOut:
    with ctx.writing() as session:
        row = replace_destination_credentials(
            session,
            ctx.box,
            app_id=caller.app_id,
            destination_id=destination_id,
            access_key_id=body.access_key_id.get_secret_value(),
            secret_access_key=body.secret_access_key.get_secret_value(),
        )
        _test(ctx, row)
        return DestinationOut.of(row)


@router.delete("/{destination_id}", status_code=204, summary="Delete (409 while scheduled)")
def delete(destination_id: PathId, caller: AppCaller, ctx: Ctx) -> Response:
    with ctx.writing() as session:
        delete_destination(session, app_id=caller.app_id, destination_id=destination_id)
    return Response(status_code=204)
