"""How a category's delivered ``data`` object maps to its current-state table row and back.

One ``Shape`` per category. ``to_columns`` turns a record (the published ``data`` shape, with
timestamps as ``format_timestamp`` text) into the table's column values in ``columns`` order, as
the driver takes them (aware datetimes, dates, JSON text) -- for ``executemany`` and binary
``COPY`` alike. ``to_data`` goes the other way, from a stored row to the exact ``data`` object a
consumer must end up holding.

``check`` validates a record written through the store's incremental API; the seeder builds
records that are correct by construction and skips it, because it writes a million of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, Date, Integer, String, Table, Text

from portability.categories import Category
from portability.db.base import UTCDateTime
from portability.errors import ValidationError
from portability.platform.tables import (
    PlatformActivity,
    PlatformMessage,
    PlatformPost,
    PlatformProfile,
)
from portability.records import format_timestamp

__all__ = [
    "ACTIVITY_KINDS",
    "PRIVACY_LEVELS",
    "SHAPES",
    "Data",
    "Shape",
    "check_record_id",
    "copy_types",
    "shape_for",
]

Data = dict[str, Any]

PRIVACY_LEVELS: frozenset[str] = frozenset({"public", "friends", "private"})
ACTIVITY_KINDS: frozenset[str] = frozenset({"like", "follow", "watch", "search", "login"})

_RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def check_record_id(record_id: str, what: str = "record id") -> str:
    """Refuse ids that could not travel safely in keys, lines and logs."""
    if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
        raise ValidationError(
            f"{what} {record_id!r} must be 1-64 characters of letters, digits, '_' or '-'"
        )
    return record_id


@dataclass(frozen=True)
class Shape:
    """The table, key column and conversions of one category."""

    category: Category
    table: Table
    key: str
    columns: tuple[str, ...]
    to_columns: Callable[[str, Data], tuple[Any, ...]]
    to_data: Callable[[Mapping[Any, Any]], Data]
    check: Callable[[str, str, Data], None]
    #: PostgreSQL type names of ``columns``, for a binary ``COPY`` (psycopg ``set_types``).
    copy_types: tuple[str, ...]

    def bind(self, user_id: str, data: Data) -> dict[str, Any]:
        """The record as SQLAlchemy insert parameters."""
        return dict(zip(self.columns, self.to_columns(user_id, data), strict=True))


def copy_types(table: Table, columns: Sequence[str]) -> tuple[str, ...]:
    """PostgreSQL type names of ``table``'s ``columns`` as psycopg's ``set_types`` wants them."""
    names = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, UTCDateTime):
            names.append("timestamptz")
        elif isinstance(kind, Date):
            names.append("date")
        elif isinstance(kind, BigInteger):
            names.append("int8")
        elif isinstance(kind, Integer):
            names.append("int4")
        elif isinstance(kind, String):  # also Text
            names.append("text" if isinstance(kind, Text) else "varchar")
        else:  # pragma: no cover - a new column type needs a name here
            raise TypeError(f"no COPY type for {table.name}.{name}: {kind!r}")
    return tuple(names)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


_parse = datetime.fromisoformat


def _opt_ts(text: str | None) -> datetime | None:
    return None if text is None else _parse(text)


def _require(data: Data, fields: Mapping[str, type | tuple[type, ...]], category: str) -> None:
    if not isinstance(data, dict):
        raise ValidationError(f"{category} record must be a JSON object, not {type(data).__name__}")
    missing = sorted(set(fields) - set(data))
    if missing:
        raise ValidationError(f"{category} record is missing {', '.join(missing)}")
    extra = sorted(set(data) - set(fields))
    if extra:
        raise ValidationError(f"{category} record has unknown fields {', '.join(extra)}")
    for name, kind in fields.items():
        value = data[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise ValidationError(f"{category} field {name} has the wrong type: {value!r}")


def _require_timestamp(data: Data, name: str, category: str) -> None:
    value = data[name]
    if value is not None and not _TIMESTAMP.match(value):
        raise ValidationError(
            f"{category} field {name} {value!r} must be a UTC timestamp like "
            "2026-01-31T12:00:00.000000Z"
        )


# -- profile ---------------------------------------------------------------------------------

_PROFILE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "user_id": str,
    "username": str,
    "display_name": str,
    "bio": str,
    "avatar_url": (str, type(None)),
    "birth_date": (str, type(None)),
    "language": str,
    "follower_count": int,
    "following_count": int,
    "updated_at": str,
}


def _profile_columns(user_id: str, d: Data) -> tuple[Any, ...]:
    return (
        user_id,
        d["username"],
        d["display_name"],
        d["bio"],
        d["avatar_url"],
        None if d["birth_date"] is None else date.fromisoformat(d["birth_date"]),
        d["language"],
        d["follower_count"],
        d["following_count"],
        _parse(d["updated_at"]),
    )


def _profile_data(row: Mapping[Any, Any]) -> Data:
    birth = row["birth_date"]
    return {
        "user_id": row["user_id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "bio": row["bio"],
        "avatar_url": row["avatar_url"],
        "birth_date": None if birth is None else birth.isoformat(),
        "language": row["language"],
        "follower_count": row["follower_count"],
        "following_count": row["following_count"],
        "updated_at": _ts(row["updated_at"]),
    }


def _profile_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _PROFILE_FIELDS, "profile")
    if record_id != user_id or d["user_id"] != user_id:
        raise ValidationError(
            f"a profile's record id and user_id must be the user id {user_id!r}, "
            f"not {record_id!r} / {d['user_id']!r}"
        )
    _require_timestamp(d, "updated_at", "profile")
    if d["birth_date"] is not None:
        try:
            date.fromisoformat(d["birth_date"])
        except ValueError:
            raise ValidationError(
                f"profile field birth_date {d['birth_date']!r} must be YYYY-MM-DD"
            ) from None


# -- posts -----------------------------------------------------------------------------------

_POST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "caption": str,
    "hashtags": list,
    "video": dict,
    "privacy": str,
    "like_count": int,
    "created_at": str,
    "updated_at": str,
}
_VIDEO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "duration_ms": int,
    "width": int,
    "height": int,
}


def _post_columns(user_id: str, d: Data) -> tuple[Any, ...]:
    video = d["video"]
    return (
        d["id"],
        user_id,
        d["caption"],
        orjson.dumps(d["hashtags"]).decode(),
        video["url"],
        video["duration_ms"],
        video["width"],
        video["height"],
        d["privacy"],
        d["like_count"],
        _parse(d["created_at"]),
        _parse(d["updated_at"]),
    )


def _post_data(row: Mapping[Any, Any]) -> Data:
    return {
        "id": row["id"],
        "caption": row["caption"],
        "hashtags": orjson.loads(row["hashtags"]),
        "video": {
            "url": row["video_url"],
            "duration_ms": row["duration_ms"],
            "width": row["width"],
            "height": row["height"],
        },
        "privacy": row["privacy"],
        "like_count": row["like_count"],
        "created_at": _ts(row["created_at"]),
        "updated_at": _ts(row["updated_at"]),
    }


def _post_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _POST_FIELDS, "posts")
    _require(d["video"], _VIDEO_FIELDS, "posts video")
    _same_id(record_id, d, "posts")
    if not all(isinstance(tag, str) for tag in d["hashtags"]):
        raise ValidationError("posts field hashtags must be a list of strings")
    if d["privacy"] not in PRIVACY_LEVELS:
        raise ValidationError(
            f"posts field privacy {d['privacy']!r} must be one of "
            + ", ".join(sorted(PRIVACY_LEVELS))
        )
    _require_timestamp(d, "created_at", "posts")
    _require_timestamp(d, "updated_at", "posts")


# -- activity --------------------------------------------------------------------------------

_ACTIVITY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "kind": str,
    "target": (str, type(None)),
    "detail": dict,
    "occurred_at": str,
}


def _activity_columns(user_id: str, d: Data) -> tuple[Any, ...]:
    return (
        d["id"],
        user_id,
        d["kind"],
        d["target"],
        orjson.dumps(d["detail"]).decode(),
        _parse(d["occurred_at"]),
    )


def _activity_data(row: Mapping[Any, Any]) -> Data:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "target": row["target"],
        "detail": orjson.loads(row["detail"]),
        "occurred_at": _ts(row["occurred_at"]),
    }


def _activity_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _ACTIVITY_FIELDS, "activity")
    _same_id(record_id, d, "activity")
    if d["kind"] not in ACTIVITY_KINDS:
        raise ValidationError(
            f"activity field kind {d['kind']!r} must be one of {', '.join(sorted(ACTIVITY_KINDS))}"
        )
    _require_timestamp(d, "occurred_at", "activity")


# -- direct messages -------------------------------------------------------------------------

_MESSAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "conversation_id": str,
    "peer_user_id": str,
    "sender_id": str,
    "body": str,
    "sent_at": str,
    "edited_at": (str, type(None)),
}


def _message_columns(user_id: str, d: Data) -> tuple[Any, ...]:
    return (
        d["id"],
        user_id,
        d["conversation_id"],
        d["peer_user_id"],
        d["sender_id"],
        d["body"],
        _parse(d["sent_at"]),
        _opt_ts(d["edited_at"]),
    )


def _message_data(row: Mapping[Any, Any]) -> Data:
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "peer_user_id": row["peer_user_id"],
        "sender_id": row["sender_id"],
        "body": row["body"],
        "sent_at": _ts(row["sent_at"]),
        "edited_at": _ts(row["edited_at"]),
    }


def _message_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _MESSAGE_FIELDS, "direct_messages")
    _same_id(record_id, d, "direct_messages")
    if d["sender_id"] not in {user_id, d["peer_user_id"]}:
        raise ValidationError(
            f"direct_messages sender {d['sender_id']!r} is neither the user nor the peer"
        )
    _require_timestamp(d, "sent_at", "direct_messages")
    _require_timestamp(d, "edited_at", "direct_messages")


def _same_id(record_id: str, d: Data, category: str) -> None:
    if d["id"] != record_id:
        raise ValidationError(
            f"{category} record id {record_id!r} differs from data id {d['id']!r}"
        )


def _shape(
    category: Category,
    model: type[Any],
    key: str,
    to_columns: Callable[[str, Data], tuple[Any, ...]],
    to_data: Callable[[Mapping[Any, Any]], Data],
    check: Callable[[str, str, Data], None],
) -> Shape:
    table: Table = model.__table__
    columns = tuple(column.name for column in table.columns)
    return Shape(
        category=category,
        table=table,
        key=key,
        columns=columns,
        to_columns=to_columns,
        to_data=to_data,
        check=check,
        copy_types=copy_types(table, columns),
    )


SHAPES: dict[Category, Shape] = {
    Category.PROFILE: _shape(
        Category.PROFILE,
        PlatformProfile,
        "user_id",
        _profile_columns,
        _profile_data,
        _profile_check,
    ),
    Category.POSTS: _shape(
        Category.POSTS,
        PlatformPost,
        "id",
        _post_columns,
        _post_data,
        _post_check,
    ),
    Category.ACTIVITY: _shape(
        Category.ACTIVITY,
        PlatformActivity,
        "id",
        _activity_columns,
        _activity_data,
        _activity_check,
    ),
    Category.DIRECT_MESSAGES: _shape(
        Category.DIRECT_MESSAGES,
        PlatformMessage,
        "id",
        _message_columns,
        _message_data,
        _message_check,
    ),
}


def shape_for(category: Category | str) -> Shape:
    try:
        return SHAPES[Category(category)]
    except ValueError:
        raise ValidationError(
            f"unknown category {category!r}: choose from {', '.join(c.value for c in Category)}"
        ) from None
