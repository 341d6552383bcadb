"""``Idempotency-Key`` on creates: a retried request gets the first answer, never a twin.

The record is written in the create's own transaction, so either both exist or neither. A
concurrent twin loses on the primary key, rolls back and answers with the winner's record.
Creates that return a secret (apply, key rotation) take no key: their answer is not stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Annotated

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portability.api._context import ApiContext
from portability.db.models import IdempotencyRecord
from portability.errors import ValidationError

__all__ = ["IdempotencyKey", "create_once"]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (a UUID); a retry with the same key and body returns "
        "the first response, and the same key with a different body is refused (422).",
    ),
]

#: The platform's own creates (internal API) share one namespace.
PLATFORM = 0

Create = Callable[[Session], tuple[BaseModel, Sequence[int]]]


def _fingerprint(request: Request, body: BaseModel | None) -> str:
    payload = body.model_dump_json() if body is not None else ""
    text = f"{request.method} {request.url.path}\n{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


def create_once(
    ctx: ApiContext,
    request: Request,
    *,
    owner: int,
    key: str | None,
    body: BaseModel | None,
    create: Create,
    status_code: int = 201,
) -> JSONResponse:
    """Run ``create`` (it returns the response model and the run ids to enqueue) at most once
    per key; enqueue only after the commit."""
    fingerprint = _fingerprint(request, body) if key is not None else ""
    for _attempt in range(2):
        try:
            with ctx.writing() as session:
                if key is not None:
                    record = session.get(IdempotencyRecord, (owner, key))
                    if record is not None:
                        return _replay(record, fingerprint)
                model, run_ids = create(session)
                content = model.model_dump(mode="json")
                if key is not None:
                    session.add(
                        IdempotencyRecord(
                            app_id=owner,
                            key=key,
                            fingerprint=fingerprint,
                            status_code=status_code,
                            response=orjson.dumps(content).decode(),
                        )
                    )
                    session.flush()
        except IntegrityError:
            if key is None:
                raise
            continue  # a concurrent twin stored its record first: answer with it
        ctx.publish(list(run_ids))
        return JSONResponse(content, status_code)
    raise AssertionError(f"idempotency record {key!r} neither inserted nor found")


def _replay(record: IdempotencyRecord, fingerprint: str) -> JSONResponse:
    if record.fingerprint != fingerprint:
        raise ValidationError(
            "Idempotency-Key was already used with a different request: "
            "use a new key for a new request",
            field="Idempotency-Key",
        )
    return JSONResponse(orjson.loads(record.response), record.status_code)
