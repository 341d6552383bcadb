"""The published record format: the fields of each category's ``data``, and the checks on it.

``Data`` is a record's ``data`` object as a consumer receives it, timestamps as
``format_timestamp`` text. The ``*_check`` functions validate a record written through the
store's incremental API (``Shape.check``); the seeder builds records that are correct by
construction and skips them. Every refusal is a ``ValidationError`` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from portability.errors import ValidationError

__all__ = [
    "ACTIVITY_KINDS",
    "PRIVACY_LEVELS",
    "Data",
    "activity_check",
    "check_record_id",
    "in_published_order",
    "message_check",
    "post_check",
    "profile_check",
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


def profile_check(user_id: str, record_id: str, d: Data) -> None:
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


def post_check(user_id: str, record_id: str, d: Data) -> None:
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


def activity_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _ACTIVITY_FIELDS, "activity")
    _same_id(record_id, d, "activity")
    if d["kind"] == "follow" and d["target"] is not None:
        check_record_id(d["target"], "activity follow target (a user id)")
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


def message_check(user_id: str, record_id: str, d: Data) -> None:
    _require(d, _MESSAGE_FIELDS, "direct_messages")
    _same_id(record_id, d, "direct_messages")
    check_record_id(d["peer_user_id"], "direct_messages peer_user_id")
    if d["sender_id"] not in {user_id, d["peer_user_id"]}:
        raise ValidationError(
            f"direct_messages sender {d['sender_id']!r} is neither the user nor the peer"
        )
    _require_timestamp(d, "sent_at", "direct_messages")
    _require_timestamp(d, "edited_at", "direct_messages")


_PUBLISHED_ORDER: dict[str, tuple[str, ...]] = {
    "profile": tuple(_PROFILE_FIELDS),
    "posts": tuple(_POST_FIELDS),
    "activity": tuple(_ACTIVITY_FIELDS),
    "direct_messages": tuple(_MESSAGE_FIELDS),
}


def in_published_order(category: str, d: Data) -> Data:
    """``d`` (already checked) with its fields in the order the schema lists them.

    Delivered lines keep their data keys in this order, so that per-app pseudonyms can be put
    into pre-rendered lines without parsing them (``portability.pseudonyms``).
    """
    return {name: d[name] for name in _PUBLISHED_ORDER[category]}


def _same_id(record_id: str, d: Data, category: str) -> None:
    if d["id"] != record_id:
        raise ValidationError(
            f"{category} record id {record_id!r} differs from data id {d['id']!r}"
        )
