"""What a person reads first in their archive: ``README.txt``, and ``manifest.json``.

The README explains each file and each field in plain words; the manifest lists every file
with its SHA-256 (of the file as extracted), so a person or a tool can check nothing was lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import orjson

from portability.categories import Category
from portability.records import format_timestamp

__all__ = ["FIELDS", "MANIFEST_NAME", "README_NAME", "Member", "manifest", "readme"]

README_NAME = "README.txt"
MANIFEST_NAME = "manifest.json"

#: Each category's fields, in plain words (the record shapes of ``docs/schemas/``).
FIELDS: dict[Category, tuple[str, list[tuple[str, str]]]] = {
    Category.PROFILE: (
        "Your profile as it is now.",
        [
            ("user_id", "your account's id on the platform"),
            ("username", "the name people use to find you (@name)"),
            ("display_name", "the name shown on your profile"),
            ("bio", "the text on your profile"),
            ("avatar_url", "where your profile picture is stored, or empty if you have none"),
            ("birth_date", "the birth date you gave, or empty"),
            ("language", "the language you use the platform in"),
            ("follower_count", "how many people follow you"),
            ("following_count", "how many people you follow"),
            ("updated_at", "when your profile last changed"),
        ],
    ),
    Category.POSTS: (
        "Each video you posted, one per record.",
        [
            ("id", "the post's id"),
            ("caption", "the text you wrote under the video"),
            ("hashtags", "the hashtags of the post"),
            ("video.url", "where the video file is stored"),
            ("video.duration_ms", "how long the video is, in milliseconds"),
            ("video.width, video.height", "the video's size in pixels"),
            ("privacy", "who can see it: public, friends or private"),
            ("like_count", "how many likes it has"),
            ("created_at", "when you posted it"),
            ("updated_at", "when you last changed it"),
        ],
    ),
    Category.ACTIVITY: (
        "What you did on the platform: likes, follows, watches, searches and sign-ins.",
        [
            ("id", "the event's id"),
            ("kind", "what happened: like, follow, watch, search or login"),
            ("target", "what you liked, followed or watched; empty for searches and sign-ins"),
            ("detail", "more about it, e.g. how long you watched or what you searched for"),
            ("occurred_at", "when it happened"),
        ],
    ),
    Category.DIRECT_MESSAGES: (
        "The direct messages you sent and received, one per record.",
        [
            ("id", "the message's id"),
            ("conversation_id", "the conversation it belongs to"),
            ("peer_user_id", "the account id of the other person in the conversation"),
            ("sender_id", "who wrote it: your account id or the other person's"),
            ("body", "the message's text"),
            ("sent_at", "when it was sent"),
            ("edited_at", "when it was last edited, or empty"),
        ],
    ),
}

_ENVELOPE = """\
Each line of a .jsonl file is one record, a JSON object with these fields:
  id          the record's id
  op          always "upsert" here (the record as it is now)
  changed_at  when the record last changed
  data        the record itself; its fields are listed below for each kind of file
"""

_TEXT = """\
Each .html file opens in a web browser: one section per record, with its fields
and values. The fields are listed below for each kind of file.
"""


@dataclass(frozen=True, slots=True)
class Member:
    """One file of the archive, as the manifest describes it."""

    name: str
    volume: int
    records: int
    bytes: int
    sha256: str


def readme(categories: list[Category], fmt: str, created_at: datetime) -> bytes:
    lines = [
        "Your data",
        "=========",
        "",
        "This archive is a copy of your data on the platform, made on",
        f"{format_timestamp(created_at)} (UTC). It holds only your own data, as it was then.",
        "",
        "Files",
        "-----",
        f"{README_NAME}      this explanation.",
        f"{MANIFEST_NAME}    the list of every file, with how many records it holds, its size in",
        "                 bytes and its SHA-256 checksum, so you can check that nothing is missing",
        "                 or damaged (e.g. `sha256sum posts.jsonl`). It is in the last volume.",
    ]
    extension = "jsonl" if fmt == "json" else "html"
    for category in categories:
        lines.append(f"{category.value}.{extension}".ljust(17) + FIELDS[category][0])
    lines += [
        "",
        "A large archive is split into numbered volumes (your-data-1.zip, your-data-2.zip, ...).",
        "Each volume is a complete ZIP file. A file that did not fit in one volume continues in",
        "the next one under a numbered name (posts-2.jsonl, posts-3.jsonl, ...).",
        "",
        "Fields",
        "------",
        _ENVELOPE if fmt == "json" else _TEXT,
    ]
    for category in categories:
        lines.append(f"{category.value}:")
        for name, meaning in FIELDS[category][1]:
            lines.append(f"  {name.ljust(26)}{meaning}")
        lines.append("")
    lines.append("Times are written as 2026-01-31T12:00:00.000000Z: UTC, to the microsecond.")
    return ("\n".join(lines) + "\n").encode()


def manifest(
    export_id: int, categories: list[Category], fmt: str, created_at: datetime, files: list[Member]
) -> bytes:
    return orjson.dumps(
        {
            "kind": "portability.user_export",
            "export_id": export_id,
            "format": fmt,
            "categories": [c.value for c in categories],
            "created_at": format_timestamp(created_at),
            "records": sum(f.records for f in files if f.name != README_NAME),
            "files": [asdict(f) for f in files],
        },
        option=orjson.OPT_INDENT_2,
    )
