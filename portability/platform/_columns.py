"""Conversions between a category's ``data`` and its current-state table row, both ways.

``*_columns`` turns a record into the table's column values in ``Shape.columns`` order, as the
driver takes them (aware datetimes, dates, JSON text) -- for ``executemany`` and binary ``COPY``
alike; they trust the record (checked before, or built correct). ``*_data`` goes back from a
stored row to the exact ``data`` object a consumer must end up holding.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import orjson

from portability.platform._record_format import Data
from portability.records import format_timestamp

__all__ = [
    "activity_columns",
    "activity_data",
    "message_columns",
    "message_data",
    "post_columns",
    "post_data",
    "profile_columns",
    "profile_data",
]


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


_parse = datetime.fromisoformat


def _opt_ts(text: str | None) -> datetime | None:
    return None if text is None else _parse(text)


# -- profile ---------------------------------------------------------------------------------


def profile_columns(user_id: str, d: Data) -> tuple[Any, ...]:
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


def profile_data(row: Mapping[Any, Any]) -> Data:
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


# -- posts -----------------------------------------------------------------------------------


def post_columns(user_id: str, d: Data) -> tuple[Any, ...]:
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


def post_data(row: Mapping[Any, Any]) -> Data:
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


# -- activity --------------------------------------------------------------------------------


def activity_columns(user_id: str, d: Data) -> tuple[Any, ...]:
    return (
        d["id"],
        user_id,
        d["kind"],
        d["target"],
        orjson.dumps(d["detail"]).decode(),
        _parse(d["occurred_at"]),
    )


def activity_data(row: Mapping[Any, Any]) -> Data:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "target": row["target"],
        "detail": orjson.loads(row["detail"]),
        "occurred_at": _ts(row["occurred_at"]),
    }


# -- direct messages -------------------------------------------------------------------------


def message_columns(user_id: str, d: Data) -> tuple[Any, ...]:
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


def message_data(row: Mapping[Any, Any]) -> Data:
    return {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "peer_user_id": row["peer_user_id"],
        "sender_id": row["sender_id"],
        "body": row["body"],
        "sent_at": _ts(row["sent_at"]),
        "edited_at": _ts(row["edited_at"]),
    }
