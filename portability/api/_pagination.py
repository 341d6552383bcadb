"""Cursor pagination: newest first, by id; the cursor is the last id seen, opaque to clients.

A cursor stays valid while rows are added (new rows have higher ids and land on page one),
so walking the pages never repeats or skips a row.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from portability.api._types import MAX_ID
from portability.errors import ValidationError

__all__ = ["Cursor", "Limit", "Page", "decode_key_cursor", "encode_key_cursor", "paginate"]

_T = TypeVar("_T", bound=BaseModel)
_R = TypeVar("_R")

Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=64, description="`next_cursor` of the previous page; omit for the first."),
]


class Page(BaseModel, Generic[_T]):
    items: list[_T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        last_id = int(value)
        if kind != "id" or not 1 <= last_id <= MAX_ID:
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "cursor is not one this API returned: pass `next_cursor` unchanged", field="cursor"
        ) from None
    return last_id


def encode_key_cursor(kind: str, key: str) -> str:
    """A cursor over rows keyed by text that sorts by creation (event ids)."""
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str, kind: str, is_key: Callable[[str], bool]) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, _, key = text.partition(":")
        if found != kind or not is_key(key):
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(
            "cursor is not one this API returned: pass `next_cursor` unchanged", field="cursor"
        ) from None
    return key


def paginate(
    session: Session,
    query: Select[_R],
    id_column: InstrumentedAttribute[int],
    *,
    cursor: str | None,
    limit: int,
    convert: Callable[[_R], _T],
) -> Page[_T]:
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    rows: Sequence[Any] = session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[Any](
        items=[convert(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )
